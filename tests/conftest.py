import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Lazily cached gr.Examples write here, not into the checkout's .gradio/ (tests check the files appear).
EXAMPLES_CACHE = Path(tempfile.mkdtemp(prefix="cfg_examples_"))
os.environ["GRADIO_EXAMPLES_CACHE"] = str(EXAMPLES_CACHE)


@pytest.fixture(scope="session")
def pipeline():
    from core.pipeline import load_pipeline

    return load_pipeline("digits", "cpu")


def nonzero_init(model: torch.nn.Module) -> torch.nn.Module:
    """UNet zero-initialises its output and residual convolutions (so training starts from ε ≡ 0); a stand-in that
    outputs 0 makes every value check compare 0 with 0. Random weights there make ε depend on z, λ and c."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
            m.reset_parameters()
    return model


def copy_with_card(src: Path, dst: Path, model: str, **card) -> Path:
    """dst: a copy of src's files of that model (NAME*), its card's keys replaced by card's (a card the shipped ones
    do not exercise, e.g. another default_sampler)."""
    import json
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for f in Path(src).glob(f"{model}*"):
        shutil.copy(f, dst / f.name)
    meta = json.loads((dst / f"{model}.json").read_text())
    (dst / f"{model}.json").write_text(json.dumps({**meta, **card}))
    return dst


@pytest.fixture(scope="session")
def tiny_unet():
    from core.unet import UNet, UNetConfig

    torch.manual_seed(0)
    return nonzero_init(UNet(UNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, attention_at_bottom=False))).eval()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def rt():
    """A runtime for calling handlers directly (eager: no warm-up, so nothing swaps under a test)."""
    from demo.runtime import Runtime

    return Runtime(device="cpu", compile=False)


@pytest.fixture(scope="session")
def app_runtime():
    """The runtime of the launched app (its models, locks, warm-ups and running curves)."""
    from demo.runtime import Runtime

    return Runtime()


@pytest.fixture(scope="session")
def app_url(app_runtime):
    """The real app, launched on 127.0.0.1 for the whole session."""
    from demo.ui import build_demo, launch_kwargs

    demo = build_demo(app_runtime)
    kw = launch_kwargs()
    kw.update(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    demo.launch(**kw)
    # The eager → compiled swap cannot happen during a test: the first test that uses the app waits here until every
    # model's warm-up has finished (however long a cold cache takes; pytest-timeout bounds it). The warm-ups start in
    # build_demo, and the handler tests use their own eager runtime. Every test therefore sees one model throughout.
    for name in app_runtime.names:
        state = app_runtime.slot(name).warmup.wait()
        assert state.startswith("compiled") or state.startswith("eager"), state
    yield demo.local_url.rstrip("/")
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, analytics_enabled=False, download_files=False, verbose=False)
