"""Loading the shipped assets onto the chosen device: the CFG model (batch-invariant), and both classifiers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.checkpoint import ASSETS, load_model
from core.classifier import DigitClassifier
from core.device import default_chunk, pick_device
from core.unet import FixedBatch

UNET_STEM = ASSETS / "cfg_unet"
CLASSIFIER_STEM = ASSETS / "digit_classifier"
NOISY_CLASSIFIER_STEM = ASSETS / "noisy_classifier"


@dataclass(frozen=True)
class Pipeline:
    """Everything the app, CLI and notebooks sample and measure with."""

    model: FixedBatch
    classifier: DigitClassifier
    noisy_classifier: DigitClassifier
    device: torch.device


def load_pipeline(device: str = "auto", assets: Path = ASSETS, chunk: int | None = None) -> Pipeline:
    """Load and sha256-check the shipped weights; chunk defaults to default_chunk(device): 16 on CPU, 256 on CUDA.

    model.enable_compile() then compiles the network for the chunk shape (≈ 80 s cold, ≈ 10 s from the inductor cache
    here); failure stays eager.
    """
    dev = pick_device(device)
    unet = load_model(assets / UNET_STEM.name, dev)
    model = FixedBatch(unet, chunk or default_chunk(dev)).eval()
    cls = load_model(assets / CLASSIFIER_STEM.name, dev)
    ncls = load_model(assets / NOISY_CLASSIFIER_STEM.name, dev)
    return Pipeline(model, cls, ncls, dev)
