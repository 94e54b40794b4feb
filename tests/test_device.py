"""Device selection and the network chunk per device, without CUDA (issue #14)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.device import default_chunk, physical_cores, pick_device


@pytest.fixture
def threads():
    """A thread count that differs from the physical core count; the original count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(physical_cores() + 1)
    yield physical_cores() + 1
    torch.set_num_threads(before)


def test_auto_is_cpu_with_one_thread_per_core_without_cuda(monkeypatch, threads):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CFG_KEEP_THREADS", raising=False)
    assert pick_device("auto") == torch.device("cpu")
    assert torch.get_num_threads() == physical_cores()


def test_keep_threads_leaves_the_thread_count(monkeypatch, threads):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CFG_KEEP_THREADS", "1")
    assert pick_device("auto") == torch.device("cpu")
    assert torch.get_num_threads() == threads


def test_auto_is_cuda_when_available_and_leaves_threads(monkeypatch, threads):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # pick_device only names the device
    monkeypatch.delenv("CFG_KEEP_THREADS", raising=False)
    assert pick_device("auto") == torch.device("cuda")
    assert torch.get_num_threads() == threads
    assert pick_device("cpu") == torch.device("cpu")  # an explicit choice wins over availability


def test_default_chunk_per_device(pipeline):
    assert default_chunk(torch.device("cpu")) == 16
    assert default_chunk(torch.device("cuda")) == 256
    assert default_chunk(torch.device("cuda", 1)) == 256
    assert pipeline.model.chunk == 16  # load_pipeline("cpu") uses it


def test_gpu_check_fails_without_cuda():
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", CFG_KEEP_THREADS="1")
    run = subprocess.run([sys.executable, "bench/gpu_check.py"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    assert "no CUDA device" in run.stderr
