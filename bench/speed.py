"""Sampler speed in core: 8 samples at the app's default steps, and batched CFG vs the naive two-pass loop.

    python bench/speed.py [--runs 7] [--model digits]

Prints the median and min–max over runs; the ratio is measured in the same process.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import header, naive_grid  # noqa: E402
from core import aot  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import SamplerConfig, generate  # noqa: E402
from demo.handlers import DEFAULT_STEPS  # noqa: E402


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def fmt(ts: list[float]) -> str:
    return f"median {statistics.median(ts):.3f} s (min {min(ts):.3f}, max {max(ts):.3f}, n={len(ts)})"


def gemm_peak(n: int = 1024, reps: int = 20) -> float:
    """Measured fp32 GEMM FLOP/s in this process (the CPU's practical conv/GEMM ceiling)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return reps * 2 * n**3 / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", default="digits", help="a shipped model (the colour model's goal: a row of 8 ≤ 1.0 s)")
    a = ap.parse_args()
    pipe = load_pipeline(a.model)
    header(f"sampler speed: {a.model} {pipe.card.shape}")
    m = pipe.model
    seeds = list(range(8))
    # 1. Batched w-grid vs the naive loop, both eager; the naive loop calls the bare UNet (no chunk padding).
    ws, grid_seeds, labels = [0.5, 1.0, 2.0, 3.0], list(range(8)), [3] * 8
    tb = timed(lambda: generate(m, grid_seeds, labels, ws, SamplerConfig("ddim", DEFAULT_STEPS)), max(3, a.runs // 2))
    tn = timed(lambda: naive_grid(m.inner, grid_seeds, labels, ws, DEFAULT_STEPS), max(3, a.runs // 2))
    same = torch.allclose(generate(m, grid_seeds, labels, ws, SamplerConfig("ddim", DEFAULT_STEPS)),
                          naive_grid(m.inner, grid_seeds, labels, ws, DEFAULT_STEPS), atol=1e-5)
    print(f"4 w × 8 seed grid, batched: {fmt(tb)}")
    print(f"4 w × 8 seed grid, naive:   {fmt(tn)}")
    print(f"batched speed-up: {statistics.median(tn) / statistics.median(tb):.2f}×  (outputs equal to 1e-5: {same})  [goal ≥ 1.8×]")
    # 2. The app's row of 8: eager, torch.compile, and the app's ahead-of-time AOTInductor package (interleaved).
    row = lambda: generate(m, seeds, [3] * 8, [1.0], SamplerConfig("ddim", DEFAULT_STEPS))  # noqa: E731
    te = timed(row, a.runs)
    t0 = time.perf_counter()
    state = m.enable_compile()
    print(f"torch.compile: {state} in {time.perf_counter() - t0:.1f} s")
    fn_tc = m.compiled
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fn_aot = aot.load_package(aot.compile_package(m.inner, m.chunk, Path(tmp) / "unet.pt2"))
    print(f"AOTInductor package: compiled in this process in {time.perf_counter() - t0:.1f} s")
    ts, tsa = [], []
    for _ in range(a.runs):
        m.use_compiled(fn_tc)
        ts += timed(row, 1)
        m.use_compiled(fn_aot)
        tsa += timed(row, 1)
    m.use_compiled(fn_tc)
    print(f"8 samples, w=1, DDIM T={DEFAULT_STEPS} (NFE {2 * DEFAULT_STEPS}), eager:         {fmt(te)}")
    print(f"8 samples, w=1, DDIM T={DEFAULT_STEPS} (NFE {2 * DEFAULT_STEPS}), torch.compile: {fmt(ts)}  [goal: digits ≤ 0.6 s, emoji ≤ 1.0 s]"
          f"  → {statistics.median(te) / statistics.median(ts):.2f}× eager")
    print(f"8 samples, w=1, DDIM T={DEFAULT_STEPS} (NFE {2 * DEFAULT_STEPS}), AOTInductor:   {fmt(tsa)}"
          f"  → {statistics.median(te) / statistics.median(tsa):.2f}× eager, "
          f"{statistics.median(ts) / statistics.median(tsa):.2f}× torch.compile")
    tc = timed(lambda: generate(m, grid_seeds, labels, ws, SamplerConfig("ddim", DEFAULT_STEPS)), max(3, a.runs // 2))
    print(f"4 w × 8 seed grid, the app's path (batched + compiled chunk): {fmt(tc)} → "
          f"{statistics.median(tn) / statistics.median(tc):.2f}× the naive eager loop")
    # 3. Sampler efficiency: model FLOP/s achieved by the row of 8 against the GEMM peak measured here.
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        m.inner(torch.zeros(1, *pipe.card.shape), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    flops = 16 * DEFAULT_STEPS * fc.get_total_flops()  # 8 cond + 8 uncond rows per step
    peak = gemm_peak()
    achieved = flops / statistics.median(ts)
    print(f"sampler efficiency: {achieved / 1e9:.1f} GFLOP/s achieved vs {peak / 1e9:.1f} GFLOP/s fp32 GEMM peak "
          f"= {100 * achieved / peak:.0f} %  [goal ≥ 50 %]")


if __name__ == "__main__":
    main()
