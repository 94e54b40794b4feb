"""Weights in safetensors with a JSON sidecar (config, sha256, training record); loading verifies the hash."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from core.classifier import ClassifierConfig, ImageClassifier
from core.unet import UNet, UNetConfig

ASSETS = Path(os.environ.get("CFG_ASSETS") or Path(__file__).resolve().parent.parent / "assets")


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt or does not match its recorded sha256."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: nn.Module, stem: Path, kind: str, extra: dict) -> dict:
    """Write stem.safetensors and stem.json ({kind, config, sha256, **extra}); returns the JSON record."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = stem.with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    record = {"kind": kind, "config": json.loads(model.cfg.to_json()), "sha256": sha256_file(weights), **extra}
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_model(stem: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a UNet or classifier from stem.{json,safetensors}, checking the sha256 first; raises WeightsError."""
    stem = Path(stem)
    meta_path, weights = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    if not meta_path.is_file():
        raise WeightsError(f"missing config {meta_path}: re-run the training command in README.md")
    if not weights.is_file():
        raise WeightsError(f"missing weights {weights}: re-run the training command in README.md (or git lfs/checkout)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"corrupt config {meta_path}: {e}") from e
    digest = sha256_file(weights)
    if digest != meta.get("sha256"):
        raise WeightsError(f"sha256 mismatch for {weights}: expected {meta.get('sha256')}, got {digest} (corrupt or truncated file)")
    if meta["kind"] == "unet":
        model: nn.Module = UNet(UNetConfig.from_dict(meta["config"]))
    elif meta["kind"] == "classifier":
        model = ImageClassifier(ClassifierConfig.from_dict(meta["config"]))
    else:
        raise WeightsError(f"unknown model kind {meta['kind']!r} in {meta_path}")
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as e:  # safetensors header errors, shape mismatches: one line, naming the tensor
        raise WeightsError(f"cannot load {weights} with the config in {meta_path}: {' '.join(str(e).split())}") from e
    return model.eval().to(device)

