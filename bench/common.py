"""Shared header for benchmark scripts: machine, torch version, thread count."""
import os
import platform

import torch


def header(title: str) -> None:
    """Print what the numbers below were measured on."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# {title}")
    print(f"# machine: {platform.node()} {platform.machine()} {cpu}, {os.cpu_count()} logical CPUs")
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}")
