"""GPU check (issue #5): samples/s at batch 256, % of the measured bf16 peak, no host syncs, and CPU agreement.

    python bench/gpu_check.py [--steps 32] [--budget 270]

Needs CUDA: exits 1 with a message otherwise. Sections run in order and each prints as it finishes; a section that
would pass the time budget (seconds) is skipped, so the whole check stays under 5 minutes on one GPU.
Exits 1 after the last section if a check failed: a host sync, the batched grid's speed-up or agreement, CPU agreement.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench.common import header, naive_grid  # noqa: E402
from core.guidance import CFGDenoiser, GuidanceOptions  # noqa: E402
from core.noise import SeededNoise  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import SamplerConfig, generate, sample_ancestral, sample_ddim  # noqa: E402

T0 = time.perf_counter()
TOLERANCE = 2e-2  # max |Δx| between fp32 runs whose kernels differ (batch shapes, devices)
SPEEDUP_GOAL = 1.8  # batched w-grid over the naive loop


def bf16_peak(n: int = 8192) -> float:
    """Measured dense bf16 matmul FLOP/s (10 products after 3 warm-ups)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * n**3 / (time.perf_counter() - t)


def cuda_time(fn, runs: int = 3) -> float:
    """Median wall time of fn() over runs, after one warm-up, with the device drained around each run."""
    fn()
    ts = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def left(budget: float) -> float:
    return budget - (time.perf_counter() - T0)


def main() -> list[str]:
    """Run the sections; returns the failed checks."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--budget", type=float, default=270.0)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: bench/gpu_check.py needs a GPU machine")
    failures: list[str] = []
    header(f"GPU check on {torch.cuda.get_device_name()}")
    gpu = load_pipeline(device="cuda")
    m = gpu.model
    seeds = list(range(a.batch))
    labels = [s % 10 for s in seeds]
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        m.inner(torch.zeros(1, 1, 28, 28, device="cuda"), torch.zeros(1, device="cuda"),
                torch.zeros(1, dtype=torch.long, device="cuda"))
    flops_per_fwd = fc.get_total_flops()
    peak = bf16_peak()
    print(f"model: {flops_per_fwd / 1e6:.0f} MFLOP per image-forward; dense bf16 matmul peak measured {peak / 1e12:.0f} TFLOP/s",
          flush=True)

    # 1. No host syncs inside the sampling loops: CUDA's sync-debug mode turns any sync into an error.
    for name in ("ddim", "ancestral"):
        noise = SeededNoise(seeds[:64], (1, 28, 28), device="cuda")
        c = torch.tensor(labels[:64], device="cuda")
        den = CFGDenoiser(m, c, torch.full((64,), 1.0), m.cfg.null_label)
        z = noise.initial()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            if name == "ddim":
                sample_ddim(den, z, 8)
            else:
                sample_ancestral(den, z, 8, noise)
            verdict = "none (sync-debug mode 'error' raised nothing)"
        except RuntimeError as e:
            verdict = f"SYNC FOUND: {str(e).splitlines()[0][:160]}"
            failures.append(f"host sync in the {name} loop")
        finally:
            torch.cuda.set_sync_debug_mode("default")
        print(f"host syncs inside the {name} loop (8 steps, CFG, 64 samples): {verdict}", flush=True)

    # 2. Throughput at batch 256 with CFG (2 network rows per sample and step): fp32, bf16, then compiled + CUDA graphs.
    def throughput(label: str, opts: GuidanceOptions) -> float:
        dt = cuda_time(lambda: generate(m, seeds, labels, [1.0], SamplerConfig("ddim", a.steps, opts=opts)))
        achieved = a.batch * (2 * a.steps - 1) * flops_per_fwd / dt  # the first step of a 1-w grid is not tiled
        print(f"{label}: {a.batch / dt:,.0f} samples/s at batch {a.batch}, DDIM T={a.steps} with CFG "
              f"({dt * 1000:.0f} ms per batch); {achieved / 1e12:.2f} TFLOP/s = {100 * achieved / peak:.2f} % of the bf16 peak",
              flush=True)
        return a.batch / dt

    rates = {"fp32 eager": throughput("fp32 eager", GuidanceOptions())}
    rates["bf16 eager"] = throughput("bf16 eager", GuidanceOptions(amp_dtype="bf16"))
    if left(a.budget) > 150:
        t = time.perf_counter()
        state = m.enable_compile(mode="reduce-overhead")
        print(f"torch.compile(mode='reduce-overhead', CUDA graphs): {state} in {time.perf_counter() - t:.0f} s", flush=True)
        if state == "compiled":
            rates["fp32 compiled+graphs"] = throughput("fp32 compiled + CUDA graphs", GuidanceOptions())
            if left(a.budget) > 80:
                rates["bf16 compiled+graphs"] = throughput("bf16 compiled + CUDA graphs", GuidanceOptions(amp_dtype="bf16"))
        m.use_compiled(None)
    else:
        print("compiled + CUDA graphs: skipped (time budget)")
    if left(a.budget) > 120:  # a bigger chunk: how far a larger batch fills the GPU
        big = load_pipeline(device="cuda", chunk=1024).model
        state = big.enable_compile(mode="reduce-overhead")
        if state == "compiled":
            s4 = list(range(1024))
            dt = cuda_time(lambda: generate(big, s4, [s % 10 for s in s4], [1.0],
                                            SamplerConfig("ddim", a.steps, opts=GuidanceOptions(amp_dtype="bf16"))))
            achieved = 1024 * (2 * a.steps - 1) * flops_per_fwd / dt
            rates["bf16 compiled+graphs, batch 1024"] = 1024 / dt
            print(f"bf16 compiled + CUDA graphs, chunk 1024: {1024 / dt:,.0f} samples/s at batch 1024; "
                  f"{achieved / 1e12:.2f} TFLOP/s = {100 * achieved / peak:.2f} % of the bf16 peak", flush=True)
        del big
    base = rates["fp32 eager"]
    print("speed-ups over fp32 eager: " + ", ".join(f"{k} {v / base:.2f}×" for k, v in rates.items()), flush=True)

    # TF32 (on by default for cuDNN convs) rounds to a 10-bit mantissa; the equality checks below run in full fp32.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    # 3. Batched w-grid vs the naive loop (one w at a time, two passes per step), both eager fp32.
    ws, gseeds = [0.5, 1.0, 2.0, 3.0], list(range(64))
    glabels = [s % 10 for s in gseeds]
    tb = cuda_time(lambda: generate(m, gseeds, glabels, ws, SamplerConfig("ddim", 16)))
    tn = cuda_time(lambda: naive_grid(m.inner, gseeds, glabels, ws, 16, device="cuda"))
    diff = (generate(m, gseeds, glabels, ws, SamplerConfig("ddim", 16)) - naive_grid(m.inner, gseeds, glabels, ws, 16, "cuda")).abs()
    same = f"max |Δx| {diff.max().item():.1e} (fp32, TF32 off)"
    print(f"4 w × 64 seeds, DDIM T=16: batched {tb * 1000:.0f} ms, naive {tn * 1000:.0f} ms → {tn / tb:.2f}× "
          f"({same})  [goal ≥ {SPEEDUP_GOAL}×]", flush=True)
    if tn / tb < SPEEDUP_GOAL:
        failures.append(f"batched w-grid {tn / tb:.2f}× the naive loop (goal ≥ {SPEEDUP_GOAL}×)")
    if not diff.max().item() < TOLERANCE:
        failures.append(f"batched vs naive grid {same} (tolerance {TOLERANCE})")

    # 4. The same seeds on the CPU: same pixels within tolerance (kernels differ, so not bitwise).
    cpu = load_pipeline(device="cpu")
    few = seeds[:16]
    for name in ("ancestral", "ddim"):
        x_gpu = generate(m, few, labels[:16], [1.0], SamplerConfig(name, 8)).cpu()
        x_cpu = generate(cpu.model, few, labels[:16], [1.0], SamplerConfig(name, 8))
        err = (x_gpu - x_cpu).abs()
        ok = err.max().item() < TOLERANCE
        print(f"GPU vs CPU (fp32, TF32 off), same seeds, {name} T=8, w=1: max |Δx| = {err.max().item():.2e}, "
              f"mean {err.mean().item():.2e} ({'OK' if ok else 'MISMATCH'}, tolerance {TOLERANCE})", flush=True)
        if not ok:
            failures.append(f"GPU vs CPU {name}: max |Δx| {err.max().item():.2e} (tolerance {TOLERANCE})")
    print(f"total {time.perf_counter() - T0:.0f} s")
    return failures


if __name__ == "__main__":
    failed = main()
    if failed:
        sys.exit("FAILED: " + "; ".join(failed))
    print("all checks passed")
