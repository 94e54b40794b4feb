"""Ahead-of-time compilation of a model's fixed chunk with AOTInductor, in a child process, into a reusable package.

    python -m core.aot --model digits --chunk 16 --out /path/to/digits.pt2

Why a child process: torch.compile inside the app holds the GIL for ≈ 80 s of tracing on a cold cache and takes both
cores, so the eager path that serves meanwhile slows to 5–7 s a request. The child runs at the lowest CPU priority with
one compile thread, the parent keeps serving at full speed, and loading the finished package takes milliseconds. The
package is cached on disk under a key of everything that changes the code: the weights' sha256, the chunk, torch's
version, the CPU's instruction sets and the thread count the kernels were generated for.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import time
import weakref
import zipfile
from pathlib import Path

import torch

from core.checkpoint import ASSETS
from core.cli import Parser, run

AOT_CACHE = Path(os.environ.get("CFG_AOT_CACHE") or Path.home() / ".cache" / "cfg-explorer" / "aot")


def cpu_flags() -> str:
    """The CPU's vector instruction sets that inductor's C++ code is specialised for."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(l.split(":", 1)[1].split() for l in f if l.startswith("flags"))
    except (OSError, StopIteration):
        return platform.machine()
    return ",".join(sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))))


def package_path(weights_sha256: str, chunk: int, device: torch.device, threads: int, cache: Path = AOT_CACHE) -> Path:
    """Where the package for this model, chunk, device, torch build, CPU and thread count lives."""
    key = "|".join([weights_sha256, str(chunk), device.type, torch.__version__, cpu_flags(), str(threads)])
    return Path(cache) / f"unet_{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt2"


def compile_package(model: torch.nn.Module, chunk: int, out: Path) -> Path:
    """torch.export the model at batch `chunk` (inference tensors, as FixedBatch passes them) and AOTInductor-compile it."""
    cfg = model.cfg
    dev = next(model.parameters()).device
    with torch.inference_mode():
        args = (torch.zeros(chunk, cfg.in_channels, cfg.image_size, cfg.image_size, device=dev),
                torch.zeros(chunk, device=dev), torch.zeros(chunk, dtype=torch.long, device=dev))
        program = torch.export.export(model, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + f".tmp{os.getpid()}.pt2")
    torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
    tmp.replace(out)  # atomic: a reader never sees half a package
    return out


def load_package(path: Path):
    """The compiled callable f(z, λ, c) → ε from a package: a GilFreePackage, or torch's loader where that fails."""
    try:
        return GilFreePackage(Path(path))
    except (OSError, AttributeError, KeyError, StopIteration, RuntimeError, zipfile.BadZipFile):
        return torch._inductor.aoti_load_package(str(path))


class GilFreePackage:
    """A CPU package's model run through its C entry point with ctypes, which releases the GIL for the whole forward
    pass. torch's own loader holds it (≈ 50 ms a chunk of the emoji network), and every other request of the app then
    waits for the GIL behind each chunk: a classroom's cache hits took seconds. Same kernels, so the same bits."""

    def __init__(self, path: Path):
        with zipfile.ZipFile(path) as z:  # 1. the model's shared library, extracted once beside the package
            name = next(n for n in z.namelist() if n.endswith(".wrapper.so"))
            so = path.with_suffix(".so")
            if not so.is_file():
                tmp = so.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(z.read(name))
                tmp.replace(so)
        lib = ctypes.CDLL(str(so))  # CDLL: every call below runs with the GIL released
        lib.AOTInductorModelContainerRun.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                                                     ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                                                     ctypes.c_void_p, ctypes.c_void_p]
        handle = ctypes.c_void_p()  # 2. one model container, with the weights the library carries
        if lib.AOTInductorModelContainerCreateWithDevice(ctypes.byref(handle), ctypes.c_size_t(1), b"cpu", None):
            raise RuntimeError(f"AOTInductor could not create the model of {path}")
        weakref.finalize(self, lib.AOTInductorModelContainerDelete, handle)
        n_in, n_out = ctypes.c_size_t(), ctypes.c_size_t()
        lib.AOTInductorModelContainerGetNumInputs(handle, ctypes.byref(n_in))
        lib.AOTInductorModelContainerGetNumOutputs(handle, ctypes.byref(n_out))
        self.lib, self.handle, self.n_in, self.n_out = lib, handle, n_in.value, n_out.value

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        assert len(inputs) == self.n_in and self.n_out == 1, (len(inputs), self.n_in, self.n_out)
        # 3. New tensor handles for the inputs (the run takes them over); the output's handle becomes a tensor.
        ins = (ctypes.c_void_p * self.n_in)(*[_CAPSULE_POINTER(c, None) for c in
                                              torch._C._aoti.unsafe_alloc_void_ptrs_from_tensors(list(inputs))])
        outs = (ctypes.c_void_p * self.n_out)()
        if self.lib.AOTInductorModelContainerRun(self.handle, ins, self.n_in, outs, self.n_out, None, None):
            raise RuntimeError("AOTInductor's model run failed")
        return torch._C._aoti.alloc_tensors_by_stealing_from_void_ptrs([_NEW_CAPSULE(outs[0], None, None)])[0]


# Python's capsule functions, called with the GIL held (PYFUNCTYPE), as private prototypes.
_CAPSULE_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))
_NEW_CAPSULE = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi))


def spawn_compile(model_name: str, chunk: int, out: Path, threads: int, assets: Path = ASSETS,
                  log: Path | None = None) -> subprocess.Popen:
    """Start `python -m core.aot` at the lowest CPU priority with one compile worker; returns the process."""
    env = dict(os.environ, TORCHINDUCTOR_COMPILE_THREADS="1", CFG_KEEP_THREADS="1", CFG_ASSETS=str(assets))
    cmd = [sys.executable, "-m", "core.aot", "--model", model_name, "--chunk", str(chunk), "--out", str(out),
           "--threads", str(threads)]
    root = Path(__file__).resolve().parent.parent
    if log is None:
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.nice(19), start_new_session=True)
    with open(log, "ab") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.nice(19), start_new_session=True)


def main(argv: list[str] | None = None) -> None:
    """CLI: compile one shipped model's chunk into a package (the app runs this in a child process)."""
    from core.pipeline import load_pipeline

    ap = Parser(description=__doc__)
    ap.add_argument("--model", default="digits")
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="threads the kernels are generated for (default: cores)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    pipe = load_pipeline(a.model, "cpu")
    # Inductor bakes the OpenMP thread count into the kernels: generate them for the serving process's count.
    torch.set_num_threads(a.threads or torch.get_num_threads())
    t = time.perf_counter()
    compile_package(pipe.model.inner, a.chunk, a.out)
    print(f"compiled {a.model} (chunk {a.chunk}, {torch.get_num_threads()} threads) in {time.perf_counter() - t:.1f} s "
          f"→ {a.out}", flush=True)


if __name__ == "__main__":
    run(main)
