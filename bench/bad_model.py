"""Choosing autoguidance's weaker model (Karras et al. 2024) by measurement: each candidate's autoguidance curve beside
CFG's, on the same seeds (labels seed mod K), DDIM, the model's own classifier for FID / IS / KID / accuracy.

    python bench/bad_model.py --model digits --candidates runs/cand/digits_bad_a runs/cand/digits_bad_b \\
        --w 0.5 1 2 --n 500

A candidate is a weights stem (STEM.safetensors + STEM.json, as core.train writes it). FID at small N is biased
upwards, so compare candidates with each other and with the CFG rows of the same run, not with the N = 2,000 sweeps.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header  # noqa: E402
from core.checkpoint import load_model  # noqa: E402
from core.guidance import GuidanceOptions  # noqa: E402
from core.pipeline import load_pipeline  # noqa: E402
from core.sweep import SweepConfig, SweepPoint, sweep_stream  # noqa: E402
from core.unet import FixedBatch  # noqa: E402


def run(pipe, cfg: SweepConfig, guide=None) -> list[dict]:
    """The sweep's final rows."""
    *_, last = sweep_stream(pipe.model, pipe.features, pipe.ref, cfg, guide)
    return last.rows()


def show(name: str, rows: list[dict]) -> None:
    for r in rows:
        print(f"{name:>28}  w={r['w']:<4g} FID {r['FID']:8.3f}  IS {r['IS']:6.3f}  KID {r['KID']:.4f}  "
              f"accuracy {100 * r['accuracy']:5.1f} %  {r['seconds']:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="digits")
    ap.add_argument("--candidates", type=Path, nargs="+", required=True, help="weights stems of the weaker models")
    ap.add_argument("--w", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--cfg-w", type=float, nargs="*", default=[0.0, 0.5, 1.0, 2.0], help="CFG's baseline points")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    pipe = load_pipeline(a.model)
    header(f"autoguidance's weaker model for {a.model}: DDIM T={a.steps}, N={a.n} per point, seeds 0..{a.n - 1}")
    if a.cfg_w:
        cfg = SweepConfig(tuple(SweepPoint(w) for w in a.cfg_w), a.n, a.steps, "ddim", first_batch=None)
        show("CFG", run(pipe, cfg))
    for stem in a.candidates:
        bad = load_model(stem)
        steps = json.loads(stem.with_suffix(".json").read_text())["train"]["steps"]
        name = f"{stem.name} ({'/'.join(map(str, bad.cfg.channels))}, {steps} steps)"
        cfg = SweepConfig(tuple(SweepPoint(w) for w in a.w), a.n, a.steps, "ddim", first_batch=None,
                          opts=GuidanceOptions(method="autoguidance"))
        show(name, run(pipe, cfg, FixedBatch(bad, pipe.model.chunk).eval()))


if __name__ == "__main__":
    main()
