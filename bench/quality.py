"""Quality of the shipped model: class accuracy (by the metric classifier) and IS per w, 100 samples per class.

    python bench/quality.py [--steps 10 --sampler ddim --per-class 100]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import header  # noqa: E402
from core.metrics import classifier_features, inception_score  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import SamplerConfig, generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--w", type=float, nargs="+", default=[0, 0.5, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--per-class", type=int, default=100)
    a = ap.parse_args()
    pipe = load_pipeline()
    header(f"quality: {a.per_class}/class, {a.sampler} {a.steps} steps")
    seeds = list(range(10 * a.per_class))
    labels = [s % 10 for s in seeds]
    print("| w | s = 1+w | class accuracy | IS | seconds |\n|---|---|---|---|---|")
    for w in a.w:
        t = time.perf_counter()
        x = generate(pipe.model, seeds, labels, [w], SamplerConfig(a.sampler, a.steps))[0]
        dt = time.perf_counter() - t
        _, probs = classifier_features(pipe.classifier, x)
        acc = float((torch.from_numpy(probs).argmax(1) == torch.tensor(labels)).float().mean())
        is_m, is_s = inception_score(probs)
        print(f"| {w:g} | {1 + w:g} | {100 * acc:.1f} % | {is_m:.3f} ± {is_s:.3f} | {dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()
