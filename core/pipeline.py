"""Loading a shipped model by name onto the chosen device: the CFG model (batch-invariant), both classifiers and the
reference statistics, as the model's card in core.registry describes them, and autoguidance's weaker model if shipped."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.checkpoint import ASSETS, load_model
from core.classifier import ImageClassifier
from core.device import default_chunk, pick_device
from core.metrics import classifier_features, load_ref_stats, prepare_ref
from core.registry import DEFAULT_MODEL, ModelCard, model_card
from core.unet import FixedBatch


@dataclass(frozen=True)
class Pipeline:
    """Everything the app, CLIs and notebooks sample and measure one model with."""

    card: ModelCard
    model: FixedBatch
    classifier: ImageClassifier
    noisy_classifier: ImageClassifier
    ref: dict
    device: torch.device
    guide: FixedBatch | None = None  # autoguidance's weaker conditional model (assets/NAME_bad.*), when shipped

    def guide_for(self, method: str) -> FixedBatch | None:
        """The weaker model when the method is autoguidance (a clear error if none is shipped), else None."""
        if method != "autoguidance":
            return None
        if self.guide is None:
            raise ValueError(f"autoguidance needs a weaker model, and none is shipped for {self.card.name!r} "
                             f"({self.card.stem('bad').name}.safetensors)")
        return self.guide

    def features(self, x: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(features, class probabilities) of images x (N, C, H, W) in [−1, 1] by the model's metric classifier."""
        return classifier_features(self.classifier, x)


def load_pipeline(name: str = DEFAULT_MODEL, device: str = "auto", assets: Path = ASSETS,
                  chunk: int | None = None) -> Pipeline:
    """Load and sha256-check a shipped model's weights; chunk defaults to default_chunk(device).

    model.enable_compile() (or demo.warmup's ahead-of-time package) then compiles the network for the chunk shape;
    failure stays eager.
    """
    card = model_card(name, assets)
    dev = pick_device(device)
    unet = load_model(card.stem(), dev)
    model = FixedBatch(unet, chunk or default_chunk(dev)).eval()
    cls = load_model(card.stem("classifier"), dev)
    ncls = load_model(card.stem("noisy_classifier"), dev)
    bad = card.stem("bad")
    guide = FixedBatch(load_model(bad, dev), model.chunk).eval() if bad.with_suffix(".safetensors").is_file() else None
    return Pipeline(card, model, cls, ncls, prepare_ref(load_ref_stats(card.ref_stats_path)), dev, guide)
