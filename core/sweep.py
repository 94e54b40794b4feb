"""FID / IS / KID versus w (the paper's Fig. 2 and Table 1), streamed batch by batch, plus a CLI.

    python -m core.sweep --w 0 0.1 0.3 0.5 1 2 4 --n 500 --steps 32 --out curves.csv

Every point uses the same seeds 0..N−1 (labels seed mod 10), so curves differ only by w or the noise config.
Under `torchrun --nproc_per_node=K -m core.sweep …` the seeds are sharded across ranks (see core.distributed).
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from core.guidance import GuidanceOptions
from core.metrics import (classifier_features, feature_stats, frechet_distance, inception_score, kernel_inception_distance,
                          kid_scale, load_ref_stats)
from core.noise import NoiseConfig
from core.sampling import SAMPLERS, generate

CSV_FIELDS = ["label", "w", "s", "truncation", "temperature", "FID", "IS", "IS_std", "KID", "KID_std", "N", "steps", "sampler", "seconds"]


@dataclass(frozen=True)
class SweepPoint:
    """One curve point: a guidance weight w and a noise configuration (truncation / temperature)."""

    w: float
    noise: NoiseConfig = NoiseConfig()

    @property
    def label(self) -> str:
        """Short name: 'w=1', 'trunc=0.5', 'temp=0.8'."""
        if self.noise.truncation is not None:
            return f"trunc={self.noise.truncation:g}" + (f",w={self.w:g}" if self.w else "")
        if self.noise.temperature != 1.0:
            return f"temp={self.noise.temperature:g}" + (f",w={self.w:g}" if self.w else "")
        return f"w={self.w:g}"


@dataclass
class PointResult:
    """Running metrics of one point."""

    point: SweepPoint
    feats: list = field(default_factory=list)
    probs: list = field(default_factory=list)
    seconds: float = 0.0
    fid: float = float("nan")
    is_mean: float = float("nan")
    is_std: float = float("nan")
    kid: float = float("nan")
    kid_std: float = float("nan")
    metrics_n: int = 0  # the N at which the metrics above were computed

    @property
    def n(self) -> int:
        return int(sum(f.shape[0] for f in self.feats))

    def update_metrics(self, ref: dict, kid_subsets: int = 20, kid_subset_size: int = 500) -> None:
        """FID / IS / KID of the samples so far against ref (prepare_ref's); a no-op when N has not changed."""
        if self.metrics_n == self.n or not self.feats:
            return
        f = np.concatenate(self.feats)
        p = np.concatenate(self.probs)
        if f.shape[0] >= 2:
            mu, sigma = feature_stats(f)
            self.fid = frechet_distance(mu, sigma, ref["mu"], ref["sigma"])
        self.is_mean, self.is_std = inception_score(p, splits=max(1, min(10, f.shape[0] // 10)))
        self.kid, self.kid_std = kernel_inception_distance(f, ref["features"], subsets=kid_subsets,
                                                           subset_size=min(kid_subset_size, f.shape[0]),
                                                           scale=float(ref["kid_scale"]))
        self.metrics_n = f.shape[0]

    def row(self, steps: int, sampler: str) -> dict:
        """A CSV row."""
        p = self.point
        return {"label": p.label, "w": p.w, "s": 1 + p.w, "truncation": p.noise.truncation if p.noise.truncation else "",
                "temperature": p.noise.temperature, "FID": self.fid, "IS": self.is_mean, "IS_std": self.is_std,
                "KID": self.kid, "KID_std": self.kid_std, "N": self.n, "steps": steps, "sampler": sampler,
                "seconds": round(self.seconds, 2)}


@dataclass
class SweepUpdate:
    """What the stream yields after each batch: every point's samples so far, the progress and the metric settings."""

    results: list[PointResult]
    done: int
    total: int
    elapsed: float
    ref: dict = field(default_factory=dict)
    kid_subsets: int = 20
    kid_subset_size: int = 500

    def rows(self, steps: int, sampler: str) -> list[dict]:
        """CSV rows of every point, computing any metrics not yet up to date (lazy_metrics streams)."""
        for r in self.results:
            r.update_metrics(self.ref, self.kid_subsets, self.kid_subset_size)
        return [r.row(steps, sampler) for r in self.results]


def chunk_aligned_size(size: int, rows_per_seed: list[int], chunk: int, lo: int, hi: int) -> int:
    """The seed count near `size` (±25 %, within [lo, hi]) whose network rows waste the least chunk padding.

    rows_per_seed: rows one seed adds to each batched run (cond rows + guided uncond rows of each noise group).
    """
    assert chunk >= 1 and lo >= 1 and hi >= lo, (chunk, lo, hi)
    size = max(lo, min(hi, size))
    cands = range(max(lo, (3 * size) // 4), min(hi, (5 * size) // 4) + 1)

    def waste(s: int) -> float:
        rows = [r * s for r in rows_per_seed]
        return sum((-n) % chunk for n in rows) / max(1, sum(rows))

    return min(cands, key=lambda s: (round(waste(s), 3), abs(s - size)))


def prepare_ref(ref: dict | None) -> dict:
    """The reference statistics to compare against (the shipped ones by default), with their KID feature scale."""
    ref = dict(ref if ref is not None else load_ref_stats())
    ref.setdefault("kid_scale", kid_scale(ref["features"]))
    return ref


def sweep_stream(model, classifier, points: list[SweepPoint], n: int, steps: int, sampler: str = "ddim", v: float = 0.3,
                 batch: int = 50, first_batch: int | None = 10, opts: GuidanceOptions = GuidanceOptions(),
                 kid_subsets: int = 20, seed_offset: int = 0, ref: dict | None = None,
                 features=None, target_batch_seconds: float | None = None,
                 kid_subset_size: int = 500, lazy_metrics: bool = False) -> Iterator[SweepUpdate]:
    """Yield updated FID/IS/KID curves after every batch of seeds; all points share seeds seed_offset..+n−1.

    Points with the same noise config run as one batched w-grid. Stopping iteration (close()) stops the work
    before the next batch. features(x) → (feats, probs) overrides the digit classifier (e.g. InceptionFeatures).
    target_batch_seconds sizes later batches from the measured speed (between 2 and `batch` seeds, chunk-aligned), so
    a consumer sees an update, and can stop, every few seconds. Results do not depend on batch sizes: seeds are fixed.
    lazy_metrics leaves FID/IS/KID to SweepUpdate.rows(), so a consumer can compute them after releasing a model lock.
    """
    if not points:
        raise ValueError("the sweep needs at least one point")
    if n < 1:
        raise ValueError(f"N must be ≥ 1, got {n}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}")
    ref = prepare_ref(ref)
    feat_fn = features if features is not None else (lambda x: classifier_features(classifier, x))
    results = [PointResult(p) for p in points]
    groups: dict[NoiseConfig, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(p.noise, []).append(i)
    chunk = int(getattr(model, "chunk", 1))
    rows_per_seed = [len(idx) + (len(idx) if opts.always_uncond else sum(points[i].w != 0 for i in idx))
                     for idx in groups.values()]
    t0 = time.perf_counter()
    start = 0
    size = min(first_batch or batch, n)
    while start < n:
        size = min(size, n - start)
        seeds = list(range(seed_offset + start, seed_offset + start + size))
        labels = [s % 10 for s in seeds]
        t_gen = 0.0
        # 1. One batched w-grid per noise config, on the same seeds.
        for noise_cfg, idx in groups.items():
            t = time.perf_counter()
            x = generate(model, seeds, labels, [points[i].w for i in idx], steps, sampler, v, noise_cfg, opts)
            t_gen += time.perf_counter() - t
            dt = (time.perf_counter() - t) / len(idx)
            # 2. Features and probabilities, then the running metrics of each point.
            for j, i in enumerate(idx):
                f, p = feat_fn(x[j])
                results[i].feats.append(f)
                results[i].probs.append(p)
                results[i].seconds += dt
                if not lazy_metrics:
                    results[i].update_metrics(ref, kid_subsets, kid_subset_size)
        start += size
        # 3. The next batch's size: fixed, or sized so that sampling takes about target_batch_seconds.
        if target_batch_seconds is not None:
            per_seed = t_gen / size
            size = chunk_aligned_size(int(target_batch_seconds / max(per_seed, 1e-6)), rows_per_seed, chunk, 2, batch)
        else:
            size = batch
        yield SweepUpdate(results, start, n, time.perf_counter() - t0, ref, kid_subsets, kid_subset_size)


def parse_points(ws: list[float], truncations: list[float], temperatures: list[float]) -> list[SweepPoint]:
    """w points, then truncation and temperature baselines at w = 0."""
    pts = [SweepPoint(float(w)) for w in ws]
    pts += [SweepPoint(0.0, NoiseConfig(truncation=float(t))) for t in truncations]
    pts += [SweepPoint(0.0, NoiseConfig(temperature=float(t))) for t in temperatures]
    return pts


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write sweep rows with the fixed CSV_FIELDS header."""
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def main(argv: list[str] | None = None) -> None:
    """CLI: run a sweep with a progress bar and write one CSV row per point."""
    from tqdm import tqdm

    from core.metrics import InceptionFeatures

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--w", type=float, nargs="+", default=[0, 0.1, 0.3, 0.5, 1, 2, 4])
    ap.add_argument("--truncation", type=float, nargs="*", default=[])
    ap.add_argument("--temperature", type=float, nargs="*", default=[])
    ap.add_argument("--n", "--samples", dest="n", type=int, default=500, help="samples per point (--samples under torchrun)")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--sampler", choices=SAMPLERS, default="ancestral")
    ap.add_argument("--v", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--inception", type=Path, default=None, help="local inception-2015-12-05.pt; default: digit classifier")
    ap.add_argument("--out", type=Path, default=Path("curves.csv"))
    ap.add_argument("--chunk", type=int, default=None, help="fixed network batch (default 16 on CPU, 256 on CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (with CUDA graphs on a GPU)")
    ap.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="autocast the network on CUDA")
    a = ap.parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: shard the seeds across ranks
        _main_distributed(a)
        return
    pipe = _load(a.device, a)
    points = parse_points(a.w, a.truncation, a.temperature)
    feats, ref = None, None
    if a.inception:  # reference statistics of the real training digits, through the same Inception network
        from core.data import load_split

        feats = InceptionFeatures(a.inception, pipe.device)
        f_real, _ = feats(load_split("train")[0])
        mu, sigma = feature_stats(f_real)
        ref = {"mu": mu, "sigma": sigma, "features": f_real}
    bar = tqdm(total=a.n, desc=f"sweep {len(points)} points × N={a.n}")
    last = None
    for upd in sweep_stream(pipe.model, pipe.classifier, points, a.n, a.steps, a.sampler, a.v, a.batch, first_batch=None,
                            ref=ref, features=feats, opts=GuidanceOptions(amp_dtype=a.amp)):
        bar.update(upd.done - bar.n)
        write_csv(a.out, upd.rows(a.steps, a.sampler))  # partial results survive an interrupted run
        last = upd
    bar.close()
    _report(a, last.rows(a.steps, a.sampler), last.elapsed)


def _load(device: str, a):
    """The pipeline with the CLI's chunk, compiled when asked (mode reduce-overhead = CUDA graphs on a GPU)."""
    from core.pipeline import load_pipeline

    pipe = load_pipeline(device, chunk=a.chunk)
    if a.compile:
        mode = "reduce-overhead" if pipe.device.type == "cuda" else None
        print(f"torch.compile ({mode or 'default'}): {pipe.model.enable_compile(mode=mode)}", flush=True)
    return pipe


def _report(a, rows: list[dict], elapsed: float) -> None:
    write_csv(a.out, rows)
    for r in rows:
        print(f"{r['label']:>14}  FID {r['FID']:8.3f}  IS {r['IS']:6.3f} ± {r['IS_std']:.3f}  KID {r['KID']:.4f}  N {r['N']}  {r['seconds']:.1f}s")
    print(f"wrote {a.out} in {elapsed:.1f} s")


def _main_distributed(a) -> None:
    """torchrun path: every rank samples its block of seeds; rank 0 computes the metrics and writes the CSV."""
    import torch.distributed as dist

    from core.distributed import init_from_env, sharded_sweep

    if a.inception:
        raise SystemExit("--inception is not supported under torchrun yet: run the Inception sweep as one process "
                         "(python -m core.sweep --inception …)")
    rank, world, dev = init_from_env()
    pipe = _load(str(dev), a)
    t = time.perf_counter()
    results = sharded_sweep(pipe.model, pipe.classifier, parse_points(a.w, a.truncation, a.temperature), a.n, a.steps,
                            a.sampler, a.v, a.batch, GuidanceOptions(amp_dtype=a.amp))
    if rank == 0:
        _report(a, [r.row(a.steps, a.sampler) for r in results], time.perf_counter() - t)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
