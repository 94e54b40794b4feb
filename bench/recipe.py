"""The colour model's recipe screen (issue #25): train candidates at equal compute, then read each one's samples.

    python bench/recipe.py train --prediction v --steps 1100 --out runs/recipe/v       # one candidate (resumable)
    python bench/recipe.py eval runs/recipe/eps runs/recipe/v runs/recipe/edm --n 540   # the table

Every candidate is the shipped emoji recipe ((32, 64, 64), batch 64, balanced, flips 0–6, lr 2e-3, EMA 0.999, seed 0)
with one change: what the UNet predicts (ε, v, or EDM's preconditioned F at log-normal λ). The reading is unguided and
w = 3 FID against the 382 held-out emoji (assets/emoji_ref_stats.npz, as the shipped sweeps), the emoji classifier's
class accuracy (class-balanced) and mean HSV saturation, with DDIM and the ancestral sampler at T = 10, on the same
seeds (labels seed mod 9) for every candidate.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import header  # noqa: E402
from core.checkpoint import load_model  # noqa: E402
from core.data import load_split, to_uint8  # noqa: E402
from core.diffusion import PREDICTIONS  # noqa: E402
from core.metrics import class_balanced_accuracy, colour_stats, feature_stats, frechet_distance  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sampling import SamplerConfig, generate  # noqa: E402
from core.train import RunOptions, TrainConfig, train  # noqa: E402
from core.unet import FixedBatch, UNetConfig  # noqa: E402

FLIPS = (0, 1, 2, 3, 4, 5, 6)  # the emoji groups that may be mirrored (not symbols or flags)


def train_candidate(a) -> None:
    """The shipped emoji recipe with one change: the prediction target."""
    x, _ = load_split("heldout", "emoji-npm")
    mcfg = UNetConfig(image_size=x.shape[-1], in_channels=x.shape[1], channels=(32, 64, 64), num_classes=9,
                      prediction=a.prediction)
    tcfg = TrainConfig("diffusion", a.steps, 64, a.lr, dataset="emoji-npm", flip_classes=FLIPS, balanced=True)
    rec = train("diffusion", Path(a.out), tcfg, mcfg, RunOptions("cpu", resume=True))
    print(f"{a.out}: {rec['steps_this_run']} steps in {rec['train_seconds_this_run']} s, loss {rec['final_loss_ema']}")


def read_candidate(pipe, stem: Path, n: int, samplers: list[str], ws: list[float]) -> list[str]:
    """One table row per (sampler, w): FID, class-balanced accuracy, mean saturation of n samples."""
    model = FixedBatch(load_model(stem), pipe.model.chunk).eval()
    k = pipe.card.num_classes
    seeds, labels = list(range(n)), [s % k for s in range(n)]
    rows = []
    for sampler in samplers:
        t0 = time.time()
        x = torch.cat([generate(model, seeds[i:i + 90], labels[i:i + 90], ws, SamplerConfig(sampler, 10)) for i in range(0, n, 90)], 1)
        for j, w in enumerate(ws):
            feats, probs = pipe.features(x[j])
            fid = frechet_distance(*feature_stats(feats), pipe.ref["mu"], pipe.ref["sigma"])
            acc = class_balanced_accuracy(probs, np.array(labels))
            sat = colour_stats(to_uint8(x[j]))["mean_saturation"]
            rows.append(f"| {stem.name} | {sampler} | {w:g} | {fid:.1f} | {100 * acc:.1f} % | {sat:.3f} |")
        print(f"# {stem.name} {sampler}: {time.time() - t0:.0f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--prediction", choices=PREDICTIONS, required=True)
    t.add_argument("--steps", type=int, default=1100)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--out", required=True)
    e = sub.add_parser("eval")
    e.add_argument("stems", nargs="+", type=Path)
    e.add_argument("--n", type=int, default=540)
    e.add_argument("--samplers", nargs="+", default=["ddim", "ancestral"])
    e.add_argument("--w", type=float, nargs="+", default=[0.0, 3.0])
    a = ap.parse_args()
    if a.cmd == "train":
        return train_candidate(a)
    pipe = load_pipeline("emoji", "cpu")
    header(f"emoji recipe screen: T = 10, N = {a.n} per point, FID against the 382 held-out emoji")
    real, real_y = load_split("heldout", "emoji-npm")
    _, p_real = pipe.features(real)
    print(f"# real held-out: class-balanced accuracy {100 * class_balanced_accuracy(p_real, real_y.numpy()):.1f} %, "
          f"mean saturation {colour_stats(to_uint8(real))['mean_saturation']:.3f}")
    print("| candidate | sampler | w | FID | accuracy (class-balanced) | mean saturation |\n|---|---|---|---|---|---|")
    for stem in a.stems:
        print("\n".join(read_candidate(pipe, stem, a.n, a.samplers, a.w)), flush=True)


if __name__ == "__main__":
    main()
