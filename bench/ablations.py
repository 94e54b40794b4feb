"""Before/after ratio of each CPU speed item of issue #5, each pair measured interleaved in this one process.

    python bench/ablations.py [--reps 7]

The workload is the app's: 8 samples (the slider row), DDIM T = 10, w = 1, unless a line says otherwise. Each line
prints `before → after` medians and the ratio (> 1 means the item helps). Ends with a profile: where the time goes.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import header  # noqa: E402
from core.guidance import CFGDenoiser  # noqa: E402
from core.noise import SeededNoise  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import SamplerConfig, generate, run_sampler, sampling_logsnrs  # noqa: E402

STEPS = 10


def paired(before, after, reps: int) -> tuple[float, float]:
    """Medians of before() and after(), run alternately (ABAB…) after one warm-up each, so drift hits both."""
    before(), after()
    tb, ta = [], []
    for _ in range(reps):
        for fn, ts in ((before, tb), (after, ta)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return statistics.median(tb), statistics.median(ta)


def report(name: str, tb: float, ta: float, unit: str = "s") -> None:
    print(f"{name:<58} {tb:8.3f} → {ta:8.3f} {unit}   {tb / ta:5.2f}×", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    pipe = load_pipeline()
    header("speed items of issue #5: before → after, ratio > 1 helps")
    m = pipe.model
    net = m.inner
    seeds, labels = list(range(8)), [3] * 8
    row = lambda: generate(m, seeds, labels, [1.0], SamplerConfig("ddim", STEPS))  # noqa: E731
    z16, lam16, c16 = torch.randn(16, 1, 28, 28), torch.zeros(16), torch.arange(16) % 10

    # 1. channels_last on the bare network, one chunk of 16 (eager).
    def fwd():
        with torch.inference_mode():
            net(z16, lam16, c16)

    def fwd_cl():
        with torch.inference_mode():
            net(z16.contiguous(memory_format=torch.channels_last), lam16, c16)

    tb, ta = [], []
    for _ in range(a.reps):  # alternate the layout itself; weights are converted outside the timed calls
        net.to(memory_format=torch.contiguous_format)
        tb.append(paired(fwd, fwd, 1)[0])
        net.to(memory_format=torch.channels_last)
        ta.append(paired(fwd_cl, fwd_cl, 1)[0])
    net.to(memory_format=torch.contiguous_format)
    report("channels_last (network, chunk 16, eager)", statistics.median(tb), statistics.median(ta))

    # 2. torch.inference_mode vs no_grad (network, chunk 16, eager).
    def fwd_ng():
        with torch.no_grad():
            net(z16, lam16, c16)

    report("torch.inference_mode vs no_grad (network, chunk 16)", *paired(fwd_ng, fwd, a.reps))

    # 3. Thread settings: 1 thread vs one per physical core (2 here).
    n = torch.get_num_threads()

    def one_thread():
        torch.set_num_threads(1)
        fwd()
        torch.set_num_threads(n)

    report(f"threads: 1 → {n} (network, chunk 16)", *paired(one_thread, fwd, a.reps))

    # 4. Cached schedule tensors (host floats) vs recomputing the schedule every run.
    def uncached():
        sampling_logsnrs.cache_clear()
        row()

    report("cached log-SNR schedule (row of 8, T=10, eager)", *paired(uncached, row, a.reps))

    # 5. Shared first step of a same-seed grid (7 w × 8 seeds): untiled vs tiled.
    ws = [0.0, 0.1, 0.3, 0.5, 1.0, 2.0, 4.0]
    noise_c_w = (SeededNoise(seeds, (1, 28, 28)).repeat(len(ws)), torch.tensor(labels * len(ws)),
                 torch.tensor(ws).repeat_interleave(len(seeds)))

    def untiled():
        noise, c, w = noise_c_w
        run_sampler("ddim", CFGDenoiser(m, c, w, m.cfg.null_label), SeededNoise(noise.seeds, noise.shape), STEPS)

    report("tiled shared first step (7 w × 8 seeds grid, eager)",
           *paired(untiled, lambda: generate(m, seeds, labels, ws, SamplerConfig("ddim", STEPS)), max(3, a.reps // 2)))

    # 6. Chunk padding: 8 seeds × 13 rows = 104 rows pad to 112; 6 seeds × 13 = 78 pad to 80. Time per seed.
    def per_seed(k):
        return lambda: generate(m, list(range(k)), [3] * k, ws, SamplerConfig("ddim", STEPS))

    tb, ta = paired(per_seed(8), per_seed(6), max(3, a.reps // 2))
    report("chunk-aligned live-curve batch (per seed, 8 → 6 seeds)", tb / 8, ta / 6)

    # 7. torch.compile for the fixed chunk (fused norms/activations, one shape), falling back to eager on failure.
    te = [paired(row, row, 1)[0] for _ in range(2)]
    t0 = time.perf_counter()
    state = m.enable_compile()
    print(f"torch.compile: {state} in {time.perf_counter() - t0:.1f} s")
    compiled = m.compiled
    tb2, ta2 = [], []
    for _ in range(a.reps):
        m.use_compiled(None)
        tb2.append(paired(row, row, 1)[0])
        m.use_compiled(compiled)
        ta2.append(paired(row, row, 1)[0])
    report("torch.compile (row of 8, T=10)", statistics.median(tb2 + te), statistics.median(ta2))

    # 8. Where the time goes: one chunk of 16, eager and compiled, by operator family (profiler self-times).
    for label, fn in (("eager", net), ("compiled", compiled)):
        if fn is None:
            continue
        with torch.profiler.profile(), torch.inference_mode():
            fn(z16, lam16, c16)  # the profiler's first use can re-trace the compiled graph: keep that out
        with torch.profiler.profile() as prof, torch.inference_mode():
            for _ in range(20):
                fn(z16, lam16, c16)
        fam: dict[str, float] = {}
        for ev in prof.key_averages():
            k = ev.key
            name = ("convolution (oneDNN)" if k == "aten::mkldnn_convolution" else
                    "fused norm/activation/elementwise (inductor C++)" if "CompiledFxGraph" in k else
                    "group_norm" if "group_norm" in k else
                    "activation / elementwise" if k in ("aten::silu", "aten::add", "aten::mul", "aten::sigmoid",
                                                        "aten::div", "aten::copy_", "aten::cat") else
                    "matmul / attention" if k in ("aten::addmm", "aten::bmm", "aten::_softmax") else "other")
            fam[name] = fam.get(name, 0.0) + ev.self_cpu_time_total
        total = sum(fam.values())
        shares = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in sorted(fam.items(), key=lambda kv: -kv[1]))
        print(f"profile, {label}, chunk 16 ({total / 20 / 1000:.1f} ms per forward under the profiler): {shares}")
    print("(on the GPU: no host syncs in either sampler loop, bf16 autocast and CUDA graphs: bench/results/gpu_check_h200.txt)")


if __name__ == "__main__":
    main()
