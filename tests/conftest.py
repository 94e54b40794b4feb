import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def pipeline():
    from core.pipeline import load_pipeline

    return load_pipeline("cpu")


@pytest.fixture(scope="session")
def tiny_unet():
    from core.unet import UNet, UNetConfig

    torch.manual_seed(0)
    return UNet(UNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, attention_at_bottom=False)).eval()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """The real app, launched on 127.0.0.1 for the whole session."""
    from demo.ui import build_demo, launch_kwargs

    demo = build_demo()
    kw = launch_kwargs()
    kw.update(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    demo.launch(**kw)
    from demo.handlers import wait_warm

    wait_warm()  # serve every test from one (compiled or eager) model, so outputs are reproducible
    yield demo.local_url.rstrip("/")
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, analytics_enabled=False, download_files=False, verbose=False)
