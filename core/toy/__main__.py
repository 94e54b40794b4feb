"""The exact 2-D lab's CLI: the lab's table per w on the same seeds, and optionally an npz of samples and exact draws.

    python -m core.toy --preset overlap --class 0 --w 0 1 3 --n 2000 --steps 64 --sampler ddim --npz lab.npz
    python -m core.toy --list-presets
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.cli import Parser, add_method_args, method_options, run
from core.sampling import SAMPLERS, SamplerConfig
from core.toy import PRESETS, degraded, measure_grid, sample_tilted


def _parser() -> Parser:
    ap = Parser(prog="python -m core.toy", description=__doc__)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="overlap")
    ap.add_argument("--list-presets", action="store_true", help="print the presets and stop")
    ap.add_argument("--class", dest="cls", type=int, default=0)
    ap.add_argument("--w", type=float, nargs="+", default=[0.0, 1.0, 3.0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (seeds S … S + N − 1, the same for every w)")
    ap.add_argument("--inflate", type=float, default=2.0, help="autoguidance's bad model: covariances × this")
    ap.add_argument("--npz", type=Path, default=None, help="write samples, w, labels, tilted draws and the mixture")
    add_method_args(ap)
    return ap


def main(argv: list[str] | None = None) -> None:
    """`python -m core.toy --preset overlap --class 0 --w 0 1 3`: the exact lab's table, per w, and optionally an npz."""
    ap = _parser()
    a = ap.parse_args(argv)
    if a.list_presets:
        for name, m in PRESETS.items():
            print(f"{name}: {len(m.means)} components, classes {', '.join(m.class_names)}")
        return
    mix = PRESETS[a.preset]
    if not 0 <= a.cls < mix.num_classes:
        ap.error(f"--class must be in 0..{mix.num_classes - 1} for {a.preset!r}, got {a.cls}")
    if a.n < 2:
        ap.error(f"--n must be ≥ 2, got {a.n}")
    opts = method_options(a)
    guide = degraded(mix, a.inflate) if opts.spec.guide else None
    sc = SamplerConfig(a.sampler, a.steps, clip_x=False, opts=opts)
    print(f"# exact lab: {a.preset}, class {a.cls} ({mix.class_names[a.cls]}), {a.sampler} T = {a.steps}, N = {a.n}, "
          f"x̂ not clipped")
    samples = []
    for row, x in measure_grid(mix, a.cls, a.w, sc, a.n, guide, a.seed):
        samples.append(x.float().numpy())
        print(row.text(), flush=True)
    if a.npz:
        mu, cov, log_pi, cls = mix.tensors()
        np.savez_compressed(a.npz, samples=np.stack(samples), w=np.asarray(a.w, np.float64),
                            labels=np.full(a.n, a.cls, np.int64),
                            tilted=np.stack([sample_tilted(mix, a.cls, w, a.n, seed=2).float().numpy() for w in a.w]),
                            means=mu.numpy(), covs=cov.numpy(), weights=log_pi.exp().numpy(),
                            component_class=cls.numpy())
        print(f"wrote {a.npz}")


if __name__ == "__main__":
    run(main)
