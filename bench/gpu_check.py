"""GPU check (issue #5): samples/s at batch 256, % of the measured bf16 matmul peak, and CPU-vs-GPU agreement.

    python bench/gpu_check.py [--steps 32]

Needs CUDA; prints and exits otherwise. Runs in well under 5 minutes on one H200.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench.common import header  # noqa: E402
from core.guidance import GuidanceOptions  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import generate  # noqa: E402


def bf16_peak(n: int = 8192) -> float:
    """Measured dense bf16 matmul FLOP/s (mean of 10 products after 3 warm-ups)."""
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this check is for a GPU machine")
        return
    header("GPU check")
    gpu = load_pipeline("cuda")
    seeds = list(range(a.batch))
    labels = [s % 10 for s in seeds]
    z = torch.zeros(1, 1, 28, 28, device="cuda")
    with FlopCounterMode(display=False) as fc:
        gpu.model.inner(z, torch.zeros(1, device="cuda"), torch.zeros(1, dtype=torch.long, device="cuda"))
    flops_per_fwd = fc.get_total_flops()
    peak = bf16_peak()
    print(f"model: {flops_per_fwd / 1e6:.0f} MFLOP per forward of one image; bf16 matmul peak measured {peak / 1e12:.0f} TFLOP/s")
    for amp in (None, "bf16"):
        opts = GuidanceOptions(amp_dtype=amp)
        generate(gpu.model, seeds, labels, [1.0], 4, "ddim", opts=opts)  # warm-up
        torch.cuda.synchronize()
        t = time.perf_counter()
        generate(gpu.model, seeds, labels, [1.0], a.steps, "ddim", opts=opts)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        achieved = a.batch * a.steps * 2 * flops_per_fwd / dt
        print(f"{amp or 'fp32'}: {a.batch / dt:.0f} samples/s at batch {a.batch}, T={a.steps} with CFG; "
              f"{achieved / 1e12:.2f} TFLOP/s = {100 * achieved / peak:.2f} % of the bf16 peak")
    cpu = load_pipeline("cpu")
    few = seeds[:16]
    x_gpu = generate(gpu.model, few, labels[:16], [1.0], 8, "ancestral").cpu()
    x_cpu = generate(cpu.model, few, labels[:16], [1.0], 8, "ancestral")
    err = (x_gpu - x_cpu).abs().max().item()
    print(f"GPU vs CPU, same seeds, ancestral T=8: max |Δx| = {err:.2e} ({'OK' if err < 2e-2 else 'MISMATCH'}, tolerance 2e-2)")


if __name__ == "__main__":
    main()
