"""The colour model's quality figures (issue #12): class accuracy, IS and colour saturation against w.

    python bench/colour.py [--model emoji] [--per-class 100] [--sampler ddim] [--steps 10] [--remedies-at 3 8]
    python bench/colour.py --grid docs/emoji_grid.png --grid-w 0 3 8     (the picture only: each class, 4 seeds per w)

Class accuracy and IS use the model's own classifier, on the same seeds at every w (labels seed mod K); the real
held-out images' accuracy by the same classifier (overall and class-balanced) is printed as the yardstick. Then each
saturation remedy of core.guidance.REMEDIES (alone) is measured with the same numbers at the --remedies-at weights,
and the methods after CFG (APG with --apg-eta/-r/-beta, the paper's defaults unless given, at the --methods-at weights;
CFG++ at --cfgpp-scales).
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import header  # noqa: E402
from core.data import load_split, to_model_range, to_uint8  # noqa: E402
from core.guidance import REMEDIES, GuidanceOptions  # noqa: E402
from core.images import grid_image  # noqa: E402
from core.cli import add_method_args, method_options  # noqa: E402
from core.metrics import class_balanced_accuracy, colour_stats, inception_score  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import DEFAULT_V, SamplerConfig, generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="emoji")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--v", type=float, default=DEFAULT_V, help="the ancestral sampler's variance interpolation")
    ap.add_argument("--w", type=float, nargs="*", default=[0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0])
    ap.add_argument("--remedies-at", type=float, nargs="*", default=[3.0, 8.0])
    ap.add_argument("--methods-at", type=float, nargs="*", default=[], help="w values for APG (--apg-eta/-r/-beta)")
    ap.add_argument("--grid", type=Path, default=None, help="write only a class-by-(w, seed) grid PNG here")
    ap.add_argument("--grid-w", type=float, nargs="+", default=[0.0, 3.0, 8.0])
    ap.add_argument("--cfgpp-scales", type=float, nargs="*", default=[], help="CFG++ scales in [0, 1] (DDIM only)")
    add_method_args(ap)
    a = ap.parse_args()
    pipe = load_pipeline(a.model)
    if a.grid:
        class_grid(pipe, a.grid_w, 4, SamplerConfig(a.sampler, a.steps, v=a.v)).save(a.grid, optimize=True)
        print(f"{a.grid}: {pipe.card.num_classes} classes × {len(a.grid_w)} w × 4 seeds, {a.sampler} T = {a.steps}")
        return
    header(f"colour quality of {a.model}: {a.sampler} T={a.steps}" + (f" v={a.v:g}" if a.sampler == "ancestral" else "")
           + f", {a.per_class} per class")
    k = pipe.card.num_classes
    seeds = list(range(a.per_class * k))
    labels = np.array([s % k for s in seeds])
    real, real_labels = load_split("heldout", pipe.card.dataset)
    data = colour_stats(to_uint8(real))
    print(f"{'real held-out':>14}  " + "  ".join(f"{key} {v:.3f}" for key, v in data.items()))
    _, probs = pipe.features(real)  # the classifier's reading of real data: the reference for "accuracy" below
    y = real_labels.numpy()
    print(f"{'real held-out':>14}  accuracy {100 * float((probs.argmax(1) == y).mean()):.1f} % "
          f"(class-balanced, as below: {100 * class_balanced_accuracy(probs, y):.1f} %), N = {len(y)}")
    for w in a.w:
        print(f"w = {w:4g} (s = {1 + w:g}): " + measure(pipe, seeds, labels, w, a, GuidanceOptions()), flush=True)
    for w in a.remedies_at:
        for name, opts in REMEDIES:
            print(f"w = {w:4g}, {name:>34}: " + measure(pipe, seeds, labels, w, a, opts), flush=True)
    apg = replace(method_options(a), method="apg")
    name = f"APG {apg.apg.describe()}"
    for w in a.methods_at:
        print(f"w = {w:4g}, {name:>34}: " + measure(pipe, seeds, labels, w, a, apg), flush=True)
    for scale in a.cfgpp_scales:
        print(f"{'CFG++ scale ' + format(scale, 'g'):>42}: " + measure(pipe, seeds, labels, scale, a,
                                                                     GuidanceOptions(method="cfgpp")), flush=True)


def class_grid(pipe, ws: list[float], n_seeds: int, cfg: SamplerConfig):
    """One row per class: seeds 0…n_seeds−1 at each w, the same noise in every w block (the grids a lecturer shows)."""
    seeds = list(range(n_seeds))
    rows = [generate(pipe.model, seeds, [c] * n_seeds, ws, cfg) for c in range(pipe.card.num_classes)]
    u8 = np.stack([np.concatenate([to_uint8(xw) for xw in x]) for x in rows])  # (K, n_w · n_seeds, H, W, 3)
    cols = [f"w={w:g} s={1 + w:g}" if j == 0 else "" for w in ws for j in range(n_seeds)]
    return grid_image(u8, scale=2, row_labels=list(pipe.card.class_names), col_labels=cols)


def measure(pipe, seeds: list[int], labels: np.ndarray, w: float, a, opts: GuidanceOptions) -> str:
    """Accuracy, IS and the colour metrics of the samples at one w with the given guidance options."""
    x = np.concatenate([to_uint8(generate(pipe.model, seeds[i:i + 90], list(labels[i:i + 90]), [w],
                                          SamplerConfig(a.sampler, a.steps, v=a.v, opts=opts))[0]) for i in range(0, len(seeds), 90)])
    _, probs = pipe.features(to_model_range(x))
    acc = float((probs.argmax(1) == labels).mean())
    is_mean, is_std = inception_score(probs)
    return (f"accuracy {100 * acc:5.1f} %  IS {is_mean:.2f} ± {is_std:.2f}  " +
            "  ".join(f"{key} {v:.3f}" for key, v in colour_stats(x).items()))


if __name__ == "__main__":
    main()
