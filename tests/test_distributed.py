"""Sharded sweeps: 2 gloo processes give the single-process result for the same seeds (issue #5)."""
import json
import os
import sys

import pytest
import torch.multiprocessing as mp

from core.distributed import shard


def test_shards_cover_the_seeds_in_order():
    for n, world in [(10, 3), (2, 4), (7, 1)]:
        blocks = [shard(n, r, world) for r in range(world)]
        seeds = [s for start, cnt in blocks for s in range(start, start + cnt)]
        assert seeds == list(range(n))


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from core.distributed import sharded_sweep
    from core.pipeline import load_pipeline
    from core.sweep import SweepPoint

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    pipe = load_pipeline("cpu")
    res = sharded_sweep(pipe.model, pipe.classifier, [SweepPoint(0.0), SweepPoint(2.0)], 9, 3, "ancestral", batch=4)
    if rank == 0:
        with open(out, "w") as f:
            json.dump([{"fid": r.fid, "is": r.is_mean, "kid": r.kid, "n": r.n} for r in res], f)
    dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_two_gloo_ranks_match_single_process(tmp_path, pipeline):
    from core.sweep import SweepPoint, sweep_stream

    out = tmp_path / "res.json"
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True, start_method="spawn")
    sharded = json.loads(out.read_text())
    *_, single = sweep_stream(pipeline.model, pipeline.classifier, [SweepPoint(0.0), SweepPoint(2.0)], 9, 3, "ancestral",
                              batch=4, first_batch=None)
    for s, r in zip(sharded, single.results):
        assert s["n"] == r.n == 9
        assert s["fid"] == pytest.approx(r.fid, rel=1e-6)
        assert s["is"] == pytest.approx(r.is_mean, rel=1e-6)
        assert s["kid"] == pytest.approx(r.kid, rel=1e-6, abs=1e-9)
