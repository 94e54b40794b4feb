"""Sharded sweeps: 2 gloo processes give the single-process result for the same seeds (issues #5, #14)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from core.distributed import shard

ROOT = Path(__file__).resolve().parent.parent


def test_shards_cover_the_seeds_in_order():
    for n, world in [(10, 3), (2, 4), (7, 1)]:
        blocks = [shard(n, r, world) for r in range(world)]
        seeds = [s for start, cnt in blocks for s in range(start, start + cnt)]
        assert seeds == list(range(n))


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from core.pipeline import load_pipeline
    from core.sweep import SweepConfig, SweepPoint, sharded_sweep

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    pipe = load_pipeline("digits", "cpu")
    cfg = SweepConfig((SweepPoint(0.0), SweepPoint(2.0)), 9, 3, "ancestral", batch=4)
    res = sharded_sweep(pipe.model, pipe.features, pipe.ref, cfg)
    if rank == 0:
        with open(out, "w") as f:
            json.dump([{"fid": r.fid, "is": r.is_mean, "kid": r.kid, "n": r.n} for r in res], f)
    dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_two_gloo_ranks_match_single_process(tmp_path, pipeline):
    from core.sweep import SweepConfig, SweepPoint, sweep_stream

    out = tmp_path / "res.json"
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True, start_method="spawn")
    sharded = json.loads(out.read_text())
    cfg = SweepConfig((SweepPoint(0.0), SweepPoint(2.0)), 9, 3, "ancestral", batch=4, first_batch=None)
    *_, single = sweep_stream(pipeline.model, pipeline.features, pipeline.ref, cfg)
    for s, r in zip(sharded, single.results):
        assert s["n"] == r.n == 9
        assert s["fid"] == pytest.approx(r.fid, rel=1e-6)
        assert s["is"] == pytest.approx(r.is_mean, rel=1e-6)
        assert s["kid"] == pytest.approx(r.kid, rel=1e-6, abs=1e-9)


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    """torchrun (its module, under this interpreter): 2 CPU ranks on a free port, from the repository root.

    CUDA is hidden: under torchrun the sweep takes its device from the process group (NCCL whenever CUDA is there).
    """
    env = dict(os.environ, CFG_KEEP_THREADS="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "core.sweep", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(600)
def test_torchrun_cli_writes_the_single_process_csv(tmp_path):
    from core.sweep.__main__ import main

    args = ["--w", "0", "2", "--steps", "3", "--sampler", "ancestral", "--batch", "4", "--device", "cpu"]
    run = _torchrun([*args, "--samples", "9", "--out", str(tmp_path / "sharded.csv")])
    assert run.returncode == 0, run.stderr[-3000:]
    main([*args, "--n", "9", "--out", str(tmp_path / "single.csv")])
    sharded, single = _rows(tmp_path / "sharded.csv"), _rows(tmp_path / "single.csv")
    assert len(sharded) == len(single) == 2
    same = ["label", "w", "N", "steps", "sampler"]
    for s, r in zip(sharded, single):
        assert [s[k] for k in same] == [r[k] for k in same] and s["N"] == "9"
        for k in ["FID", "IS", "IS_std", "KID", "KID_std"]:  # printed to 6 significant digits
            assert float(s[k]) == pytest.approx(float(r[k]), rel=1e-5, abs=1e-12), (s["label"], k)


@pytest.mark.timeout(300)
def test_torchrun_refuses_inception(tmp_path):
    run = _torchrun(["--w", "0", "--samples", "4", "--steps", "2",
                     "--inception", str(tmp_path / "inception-2015-12-05.pt"), "--out", str(tmp_path / "c.csv")])
    assert run.returncode != 0
    assert "--inception is not supported under torchrun" in run.stderr
    assert not (tmp_path / "c.csv").exists()
