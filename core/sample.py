"""Sampling CLI: a labelled same-seed grid, one row per w and one column per seed.

    python -m core.sample --model digits --classes 3 --w 0 0.5 1 3 --seeds 0-7 --steps 64 --sampler ancestral \\
        --out grid.png --npz grid.npz

The npz holds images (uint8: (n_w, n_seeds, H, W) for one channel, (n_w, n_seeds, H, W, 3) for RGB), w, seeds, labels,
class_names, and the guidance method with its parameters (--method cfg|apg|cfgpp|autoguidance).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.checkpoint import ASSETS
from core.data import to_uint8
from core.images import grid_image
from core.noise import NoiseConfig
from core.sampling import DEFAULT_V, SAMPLERS, SamplerConfig, generate, sampling_logsnrs

MAX_GRID_SEEDS = 1024  # columns of one PNG grid
SEED_BLOCK = 64  # seeds per generate() call, so a large grid shows progress
from core.cli import Parser, add_method_args, method_options, run


def parse_seeds(items: list[str]) -> list[int]:
    """Seeds from a list of integers and ranges 'a-b' (inclusive)."""
    seeds: list[int] = []
    for it in items:
        for part in str(it).split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError(f"bad seed range {part!r}")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


def broadcast_classes(classes: list[int], n_seeds: int, num_classes: int) -> list[int]:
    """One class for every seed, or one class per seed."""
    if len(classes) == 1:
        classes = classes * n_seeds
    if len(classes) != n_seeds:
        raise ValueError(f"--classes takes one class or one per seed ({n_seeds}), got {len(classes)}")
    for c in classes:
        if not 0 <= c < num_classes:
            raise ValueError(f"class must be in 0..{num_classes - 1}, got {c}")
    return list(classes)


def parser() -> Parser:
    """The sample CLI's arguments."""
    from core.registry import DEFAULT_MODEL

    ap = Parser(description=__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a shipped model's name (see core.registry)")
    ap.add_argument("--assets", type=Path, default=ASSETS, help="the folder of model assets")
    ap.add_argument("--classes", type=int, nargs="+", default=[3])
    ap.add_argument("--w", type=float, nargs="+", default=[0, 0.5, 1, 3])
    ap.add_argument("--seeds", nargs="+", default=["0-7"])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--sampler", choices=SAMPLERS, default=None, help="default: the model card's default_sampler")
    ap.add_argument("--v", type=float, default=DEFAULT_V)
    ap.add_argument("--truncation", type=float, default=None)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("grid.png"))
    ap.add_argument("--npz", type=Path, default=None)
    add_method_args(ap)
    return ap


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: a labelled same-seed grid (PNG, and the pixels as npz)."""
    from core.pipeline import load_pipeline

    ap = parser()
    a = ap.parse_args(argv)
    opts = method_options(a)
    seeds = parse_seeds(a.seeds)
    if len(seeds) > MAX_GRID_SEEDS:
        raise ValueError(f"--seeds gives {len(seeds):,} seeds; a grid holds at most {MAX_GRID_SEEDS:,} (python -m "
                         f"core.sweep measures many samples without drawing them)")
    sampling_logsnrs(a.steps)  # checks T before any model is loaded
    pipe = load_pipeline(a.model, a.device, a.assets)
    a.sampler = a.sampler or pipe.card.default_sampler
    labels = broadcast_classes(a.classes, len(seeds), pipe.card.num_classes)
    guide = pipe.guide_for(a.method)
    noise = NoiseConfig(a.truncation, a.temperature)
    nfe = a.steps * (1 if opts.method == "cfg" and not any(a.w) else 2)
    print(f"{len(a.w)} w × {len(seeds)} seeds = {len(a.w) * len(seeds):,} samples, {a.steps} {a.sampler} steps, "
          f"NFE {nfe} each", flush=True)
    t = time.perf_counter()
    blocks = []  # blocks of seeds: each sample depends on its own seed only, so the pixels are those of one big call
    for i in tqdm(range(0, len(seeds), SEED_BLOCK), desc="sampling", unit="block", disable=len(seeds) <= SEED_BLOCK):
        x = generate(pipe.model, seeds[i:i + SEED_BLOCK], labels[i:i + SEED_BLOCK], a.w,
                     SamplerConfig(a.sampler, a.steps, v=a.v, opts=opts), noise, guide_model=guide)
        blocks.append(to_uint8(x.reshape(-1, *x.shape[2:])).reshape(len(a.w), x.shape[1], *x.shape[3:], -1))
    dt = time.perf_counter() - t
    imgs = np.concatenate(blocks, axis=1)
    imgs = imgs[..., 0] if imgs.shape[-1] == 1 else imgs
    spec = opts.spec
    rows = [f"w={w:g} s={1 + w:g}" if spec.weight == "w" else f"{spec.label} {spec.weight_text(w)}" for w in a.w]
    cols = [f"{s}:{c}" for s, c in zip(seeds, labels)]
    grid_image(imgs, a.scale, rows, cols).save(a.out, format="PNG")
    if a.npz:
        np.savez_compressed(a.npz, images=imgs, w=np.asarray(a.w, np.float64), seeds=np.asarray(seeds, np.int64),
                            labels=np.asarray(labels, np.int64), class_names=np.asarray(pipe.card.class_names),
                            sampler=np.asarray(a.sampler), steps=np.asarray(a.steps),
                            **{k: np.asarray(v) for k, v in opts.record().items()})
    print(f"{len(a.w)}×{len(seeds)} samples, {a.steps} {a.sampler} steps, {dt:.2f} s → {a.out}" + (f", {a.npz}" if a.npz else ""))


if __name__ == "__main__":
    run(main)
