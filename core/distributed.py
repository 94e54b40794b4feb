"""Paper-scale sweeps sharded across processes with torch.distributed (NCCL on GPUs, gloo on CPU).

    torchrun --nproc_per_node=N -m core.sweep --w 0 0.1 0.3 1 4 --samples 50000 --steps 256 --out curves.csv

Each rank samples a contiguous block of the seeds; rank 0 gathers the features in seed order and computes
FID / IS / KID once, so the result equals the single-process sweep over the same seeds.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from core.guidance import GuidanceOptions
from core.sweep import PointResult, SweepPoint, prepare_ref, sweep_stream


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """(first seed, count) of rank's contiguous block of seeds 0..n−1."""
    assert 0 <= rank < world, (rank, world)
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, base + (1 if rank < extra else 0)


def init_from_env() -> tuple[int, int, torch.device]:
    """Join the torchrun process group (NCCL with CUDA, else gloo); returns (rank, world size, device)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return rank, world, torch.device("cuda", local)
    dist.init_process_group("gloo")
    return rank, world, torch.device("cpu")


def sharded_sweep(model, classifier, points: list[SweepPoint], n: int, steps: int, sampler: str = "ancestral",
                  v: float = 0.3, batch: int = 100, opts: GuidanceOptions = GuidanceOptions(), ref: dict | None = None,
                  kid_subsets: int = 20) -> list[PointResult] | None:
    """Run this rank's block of seeds, gather features to rank 0 and compute the metrics there (None on other ranks)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    start, count = shard(n, rank, world)
    last = None
    if count:
        for last in sweep_stream(model, classifier, points, count, steps, sampler, v, batch, first_batch=None,
                                 opts=opts, kid_subsets=kid_subsets, seed_offset=start, ref=ref, lazy_metrics=True):
            pass
    mine = [(r.feats, r.probs, r.seconds) for r in last.results] if last is not None else None
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    if rank != 0:
        return None
    ref = prepare_ref(ref)
    out = []
    for i, p in enumerate(points):
        r = PointResult(p)
        for part in gathered:  # rank order = seed order
            if part is not None:
                r.feats += part[i][0]
                r.probs += part[i][1]
                r.seconds = max(r.seconds, part[i][2])
        r.update_metrics(ref, kid_subsets, 500)
        out.append(r)
    return out
