"""Does a model copy its training images? (issue #25) The share of samples closer to their nearest training image than
the 5th percentile of the held-out images' nearest-training distances, in pixels and in the classifier's features.

    python bench/memorisation.py [--model emoji] [--n 1000] [--w 0 3] [--steps 10]

A model that generalises puts about 5 % or fewer of its samples there; copies of training images put 100 %. Every
sampler is measured on the same seeds (labels seed mod K). tests/test_emoji_model.py checks the figure (≤ 5 %) on
the shipped weights with the card's default sampler.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import header  # noqa: E402
from core.data import load_split  # noqa: E402
from core.metrics import too_close_share  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import SAMPLERS, SamplerConfig, generate  # noqa: E402

BLOCK = 250  # seeds per generate call (each sample depends on its own seed only)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="emoji")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--w", type=float, nargs="+", default=[0.0, 3.0])
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    pipe = load_pipeline(a.model, "cpu")
    header(f"memorisation of {a.model}: N = {a.n} per row, T = {a.steps}, 5th-percentile rule")
    refs = [load_split(split, pipe.card.dataset)[0] for split in ("train", "heldout")]
    pixel_refs = [r.reshape(len(r), -1).numpy() for r in refs]  # the training and held-out images, computed once
    feature_refs = [pipe.features(r)[0] for r in refs]
    seeds, k = list(range(a.n)), pipe.card.num_classes
    for sampler in SAMPLERS:
        t = time.perf_counter()
        x = torch.cat([generate(pipe.model, seeds[i:i + BLOCK], [s % k for s in seeds[i:i + BLOCK]], a.w,
                                SamplerConfig(sampler, a.steps)) for i in range(0, a.n, BLOCK)], dim=1)
        for j, w in enumerate(a.w):
            pixels = too_close_share(x[j].reshape(len(x[j]), -1).numpy(), *pixel_refs)
            feats = too_close_share(pipe.features(x[j])[0], *feature_refs)
            print(f"{sampler:>9} w = {w:g}: too close in pixels {100 * pixels:.2f} %, in the classifier's features "
                  f"{100 * feats:.2f} %  [goal ≤ 5 %]", flush=True)
        print(f"{'':>9} {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
