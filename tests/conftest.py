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
