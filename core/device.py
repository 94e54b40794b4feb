"""Device selection: CUDA when available, else CPU with one thread per physical core; the network chunk per device."""
from __future__ import annotations

import os

import torch


def physical_cores() -> int:
    """Number of physical CPU cores (falls back to os.cpu_count())."""
    try:
        cores = set()
        with open("/proc/cpuinfo") as f:
            phys = core = None
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip() and core is not None:
                    cores.add((phys, core))
                    phys = core = None
        n = len(cores)
    except OSError:
        n = 0
    n = n or (os.cpu_count() or 1)
    return max(1, min(n, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else n))


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → cuda if available else cpu; on cpu, set torch threads to the physical core count."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cpu" and not os.environ.get("CFG_KEEP_THREADS"):
        torch.set_num_threads(physical_cores())
    return dev


def default_chunk(device: torch.device) -> int:
    """The fixed network batch: 16 on CPU (bitwise same-seed results), 256 on CUDA (fills the GPU)."""
    return 16 if device.type == "cpu" else 256
