"""torch.distributed plumbing for sharded sweeps (NCCL on GPUs, gloo on CPU); the sweep itself is core.sweep's.

    torchrun --nproc_per_node=N -m core.sweep --w 0 0.1 0.3 1 4 --samples 50000 --steps 256 --out curves.csv

Each rank gets a contiguous block of the seeds; rank 0 gathers every rank's results in rank (= seed) order.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


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


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the current process group."""
    return dist.get_rank(), dist.get_world_size()


def gather_to_rank0(obj) -> list | None:
    """Every rank's obj, in rank order, on rank 0; None on the other ranks."""
    rank, world = rank_and_world()
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def finish() -> None:
    """Leave the process group."""
    dist.destroy_process_group()
