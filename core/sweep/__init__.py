"""FID / IS / KID versus w (the paper's Fig. 2 and Table 1), streamed batch by batch (the CLI is core/sweep/__main__.py).

Every point uses the same seeds 0..N−1 (labels seed mod K), so curves differ only by w or the noise config.
Under `torchrun --nproc_per_node=R -m core.sweep …` the seeds are sharded across ranks (sharded_sweep).
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from torch import Tensor

from core import distributed
from core.guidance import GuidanceOptions
from core.data import to_uint8
from core.metrics import (colour_stats, feature_stats, frechet_distance, inception_score, kernel_inception_distance,
                          prepare_ref)
from core.noise import NoiseConfig
from core.sampling import DEFAULT_V, SAMPLERS, SamplerConfig, generate

Features = Callable[[Tensor], "tuple[np.ndarray, np.ndarray]"]  # images → (features (N, d), class probabilities (N, K))

COLOUR_FIELDS = ["mean_saturation", "saturated_share", "colourfulness", "clipped_share"]  # core.metrics.colour_stats
CSV_FIELDS = ["label", "w", "s", "truncation", "temperature", "FID", "IS", "IS_std", "KID", "KID_std", "accuracy",
              *COLOUR_FIELDS, "N", "steps", "sampler", "seconds", "method", "apg_eta", "apg_r", "apg_beta", "apg_clip_x"]


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
    correct: int = 0  # samples the classifier assigns to their own label
    colour_sums: dict = field(default_factory=dict)  # colour_stats × batch size, summed (RGB models only)

    def add_batch(self, feats: np.ndarray, probs: np.ndarray, labels: list[int], colour: dict | None) -> None:
        """Record one batch: its features, class probabilities, correct labels and (RGB) per-image colour means."""
        self.feats.append(feats)
        self.probs.append(probs)
        self.correct += int((probs.argmax(1) == np.asarray(labels)).sum())
        for k, v in (colour or {}).items():
            self.colour_sums[k] = self.colour_sums.get(k, 0.0) + v * len(labels)

    @property
    def n(self) -> int:
        return int(sum(f.shape[0] for f in self.feats))

    def merge(self, other: "PointResult") -> None:
        """Append another shard's samples of the same point (in seed order); its time runs in parallel with ours."""
        assert other.point == self.point, (other.point, self.point)
        self.feats += other.feats
        self.probs += other.probs
        self.seconds = max(self.seconds, other.seconds)
        self.correct += other.correct
        for k, v in other.colour_sums.items():
            self.colour_sums[k] = self.colour_sums.get(k, 0.0) + v
        self.metrics_n = 0

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

    def row(self, steps: int, sampler: str, opts: GuidanceOptions = GuidanceOptions()) -> dict:
        """A CSV row (steps, sampler and the guidance method are the sweep's)."""
        p = self.point
        label = p.label if opts.method == "cfg" else f"{opts.method_tag}:{p.label}"  # one CSV may hold several methods
        return {"label": label, "w": p.w, "s": 1 + p.w, "truncation": p.noise.truncation if p.noise.truncation else "",
                "temperature": p.noise.temperature, "FID": self.fid, "IS": self.is_mean, "IS_std": self.is_std,
                "KID": self.kid, "KID_std": self.kid_std, "accuracy": self.correct / max(1, self.n),
                **{k: self.colour_sums[k] / self.n if k in self.colour_sums else "" for k in COLOUR_FIELDS}, "N": self.n, "steps": steps, "sampler": sampler,
                "seconds": round(self.seconds, 2), **opts.record()}


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep samples (points, N per point on seeds seed_offset.., sampler) and how it batches and reports.

    first_batch: the first batch's seed count (a quick first update); later batches have `batch` seeds, or are sized
    to about target_batch_seconds of sampling (between 2 and `batch`, chunk-aligned). lazy_metrics leaves FID / IS /
    KID to SweepUpdate.rows(), so a consumer can compute them after releasing a model lock.
    """

    points: tuple[SweepPoint, ...]
    n: int
    steps: int
    sampler: str = "ddim"
    v: float = DEFAULT_V
    batch: int = 50
    first_batch: int | None = 10
    opts: GuidanceOptions = GuidanceOptions()
    seed_offset: int = 0
    target_batch_seconds: float | None = None
    lazy_metrics: bool = False
    kid_subsets: int = 20
    kid_subset_size: int = 500

    @property
    def sampling(self) -> SamplerConfig:
        """The sampling request every point's grid is drawn with."""
        return SamplerConfig(self.sampler, self.steps, self.v, opts=self.opts)

    def __post_init__(self):
        if not self.points:
            raise ValueError("the sweep needs at least one point")
        if self.n < 1:
            raise ValueError(f"N must be ≥ 1, got {self.n}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}")


@dataclass
class SweepUpdate:
    """What the stream yields after each batch: every point's samples so far and the progress."""

    results: list[PointResult]
    done: int
    elapsed: float
    cfg: SweepConfig
    ref: dict

    @property
    def total(self) -> int:
        return self.cfg.n

    def rows(self) -> list[dict]:
        """CSV rows of every point, computing any metrics not yet up to date (lazy_metrics streams)."""
        for r in self.results:
            r.update_metrics(self.ref, self.cfg.kid_subsets, self.cfg.kid_subset_size)
        return [r.row(self.cfg.steps, self.cfg.sampler, self.cfg.opts) for r in self.results]


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


def sweep_stream(model, features: Features, ref: dict, cfg: SweepConfig, guide_model=None) -> Iterator[SweepUpdate]:
    """Yield updated FID/IS/KID curves after every batch of seeds; all points share the same seeds.

    Points with the same noise config run as one batched w-grid; labels are seed mod K (the model's classes).
    features(x) → (feats, probs), e.g. Pipeline.features or InceptionFeatures; ref: metrics.prepare_ref's statistics.
    Stopping iteration (close()) stops the work before the next batch. Results do not depend on batch sizes.
    guide_model: autoguidance's weaker model (cfg.opts.method == "autoguidance").
    """
    ref = prepare_ref(ref)
    points = cfg.points
    num_classes = model.cfg.num_classes
    results = [PointResult(p) for p in points]
    groups: dict[NoiseConfig, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(p.noise, []).append(i)
    chunk = int(getattr(model, "chunk", 1))
    rows_per_seed = [len(idx) + (len(idx) if cfg.opts.uncond_on_every_row else sum(points[i].w != 0 for i in idx))
                     for idx in groups.values()]
    t0 = time.perf_counter()
    start = 0
    size = min(cfg.first_batch or cfg.batch, cfg.n)
    while start < cfg.n:
        size = min(size, cfg.n - start)
        seeds = list(range(cfg.seed_offset + start, cfg.seed_offset + start + size))
        labels = [s % num_classes for s in seeds]
        t_gen = 0.0
        # 1. One batched w-grid per noise config, on the same seeds.
        for noise_cfg, idx in groups.items():
            t = time.perf_counter()
            x = generate(model, seeds, labels, [points[i].w for i in idx], cfg.sampling, noise_cfg,
                         guide_model=guide_model)
            t_gen += time.perf_counter() - t
            dt = (time.perf_counter() - t) / len(idx)
            # 2. Features and probabilities, then the running metrics of each point.
            for j, i in enumerate(idx):
                f, p = features(x[j])
                colour = colour_stats(to_uint8(x[j])) if x.shape[2] == 3 else None
                results[i].add_batch(f, p, labels, colour)
                results[i].seconds += dt
                if not cfg.lazy_metrics:
                    results[i].update_metrics(ref, cfg.kid_subsets, cfg.kid_subset_size)
        start += size
        # 3. The next batch's size: fixed, or sized so that sampling takes about target_batch_seconds.
        if cfg.target_batch_seconds is not None:
            per_seed = t_gen / size
            size = chunk_aligned_size(int(cfg.target_batch_seconds / max(per_seed, 1e-6)), rows_per_seed, chunk, 2,
                                      cfg.batch)
        else:
            size = cfg.batch
        yield SweepUpdate(results, start, time.perf_counter() - t0, cfg, ref)


def sharded_sweep(model, features: Features, ref: dict, cfg: SweepConfig, guide_model=None) -> list[PointResult] | None:
    """This rank's contiguous block of the seeds, gathered to rank 0, which computes the metrics (None elsewhere).

    The result equals the single-process sweep over the same seeds (a test runs 2 gloo processes).
    """
    rank, world = distributed.rank_and_world()
    start, count = distributed.shard(cfg.n, rank, world)
    mine = None
    if count:
        block = replace(cfg, n=count, seed_offset=cfg.seed_offset + start, first_batch=None, lazy_metrics=True)
        *_, last = sweep_stream(model, features, ref, block, guide_model)
        mine = last.results
    parts = distributed.gather_to_rank0(mine)
    if parts is None:
        return None
    ref = prepare_ref(ref)
    out = [PointResult(p) for p in cfg.points]
    for part in parts:  # rank order = seed order
        for r, shard_r in zip(out, part or []):
            r.merge(shard_r)
    for r in out:
        r.update_metrics(ref, cfg.kid_subsets, cfg.kid_subset_size)
    return out


def parse_points(ws: list[float], truncations: list[float], temperatures: list[float]) -> list[SweepPoint]:
    """w points, then truncation and temperature baselines at w = 0."""
    pts = [SweepPoint(float(w)) for w in ws]
    pts += [SweepPoint(0.0, NoiseConfig(truncation=float(t))) for t in truncations]
    pts += [SweepPoint(0.0, NoiseConfig(temperature=float(t))) for t in temperatures]
    return pts


def read_csv_rows(path: Path) -> list[dict]:
    """A sweep CSV's rows as strings (a file written before some CSV_FIELDS existed leaves them blank when rewritten)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def merge_rows(kept: list[dict], rows: list[dict]) -> list[dict]:
    """kept's rows, less those whose label is in rows, then rows."""
    new = {r["label"] for r in rows}
    return [r for r in kept if r["label"] not in new] + rows


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write sweep rows with the fixed CSV_FIELDS header."""
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
