"""The model registry: every shipped model is an asset stem NAME with a JSON sidecar; its companions share the stem.

    assets/NAME.{json,safetensors}                     the CFG UNet; the sidecar holds the model card below
    assets/NAME_classifier.{json,safetensors}          the metric classifier (FID / IS / KID features)
    assets/NAME_noisy_classifier.{json,safetensors}    p_φ(c | z_λ) for classifier guidance
    assets/NAME_ref_stats.npz                          reference statistics of the real data
    assets/NAME_sweep_SAMPLER_TSTEPS.csv               precomputed FID / IS sweeps

Adding a model means adding these files: nothing in core/ or demo/ names a model, a class or an image size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.checkpoint import ASSETS, WeightsError
from core.sampling import SAMPLERS
from core.unet import UNetConfig

DEFAULT_MODEL = "digits"
CARD_FIELDS = ("name", "title", "class_names", "null_label", "data_source", "licence", "dataset")


class UnknownModelError(WeightsError):
    """No shipped model has this name."""


@dataclass(frozen=True)
class ModelCard:
    """What the app and the CLIs know about a model, read from its UNet's JSON sidecar."""

    name: str
    title: str
    class_names: tuple[str, ...]
    null_label: int
    channels: int
    image_size: int
    logsnr_range: tuple[float, float]
    data_source: str
    licence: str
    dataset: str
    sha256: str
    assets: Path
    default_sampler: str = "ddim"  # the app's and the CLIs' sampler for this model when none is chosen (issue #25)
    recipe: str = ""  # how the weights were trained, in one line (training_recipe)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (self.channels, self.image_size, self.image_size)

    def stem(self, part: str = "") -> Path:
        """assets/NAME or assets/NAME_part."""
        return self.assets / (f"{self.name}_{part}" if part else self.name)

    @property
    def ref_stats_path(self) -> Path:
        return self.stem("ref_stats").with_suffix(".npz")

    def sweep_path(self, sampler: str, steps: int) -> Path:
        """The precomputed sweep made with this sampler and T (it may not exist)."""
        return self.assets / f"{self.name}_sweep_{sampler}_T{steps}.csv"

    def sweeps(self) -> list[Path]:
        """Every precomputed sweep shipped for this model."""
        return sorted(self.assets.glob(f"{self.name}_sweep_*_T*.csv"))


PREDICTION_NAMES = {"eps": "ε-prediction", "v": "v-prediction", "edm": "EDM preconditioning"}


def training_recipe(meta: dict, cfg: UNetConfig) -> str:
    """One line from a card's record: prediction target, network widths, and the steps of the shipped EMA weights
    (a snapshot of a longer fixed schedule says so)."""
    train = meta.get("train", {})
    if not train:
        return ""
    steps = meta.get("snapshot_step", train["steps"])
    at = (f"EMA weights at step {steps:,} of a {train['steps']:,}-step schedule" if steps != train["steps"]
          else f"{steps:,} steps")
    return (f"{PREDICTION_NAMES[cfg.prediction]}, UNet {tuple(cfg.channels)}, {at}, batch {train['batch']}, "
            f"p_uncond {train['p_uncond']:g}")


def shipped_models(assets: Path = ASSETS) -> list[str]:
    """Names of the shipped models: the JSON sidecars of kind 'unet' that carry a model card, default first (an
    autoguidance guide, NAME_bad with "guide_for": NAME, is a companion, not a model)."""
    names = []
    for p in sorted(Path(assets).glob("*.json")):
        try:
            meta = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("kind") == "unet" and meta.get("name") == p.stem and not meta.get("guide_for"):
            names.append(p.stem)
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, n))


def model_card(name: str, assets: Path = ASSETS) -> ModelCard:
    """The card of a shipped model; UnknownModelError names the shipped ones, WeightsError a broken sidecar."""
    path = Path(assets) / f"{name}.json"
    if not isinstance(name, str) or not name or "/" in name or not path.is_file():
        raise UnknownModelError(f"unknown model {name!r}; shipped: {', '.join(shipped_models(assets)) or 'none'}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"corrupt config {path}: {e}") from e
    missing = [k for k in CARD_FIELDS if k not in meta]
    if meta.get("kind") != "unet" or missing:
        raise WeightsError(f"{path} is not a model card (kind {meta.get('kind')!r}, missing {', '.join(missing)})")
    cfg = UNetConfig.from_dict(meta["config"])
    if len(meta["class_names"]) != cfg.num_classes or meta["null_label"] != cfg.null_label:
        raise WeightsError(f"{path}: class_names and null_label must match config.num_classes = {cfg.num_classes}")
    if meta.get("default_sampler", "ddim") not in SAMPLERS:
        raise WeightsError(f"{path}: default_sampler must be one of {', '.join(SAMPLERS)}, got {meta['default_sampler']!r}")
    return ModelCard(name=meta["name"], title=meta["title"], class_names=tuple(meta["class_names"]),
                     null_label=cfg.null_label, channels=cfg.in_channels, image_size=cfg.image_size,
                     logsnr_range=cfg.logsnr_range, data_source=meta["data_source"], licence=meta["licence"],
                     dataset=meta["dataset"], sha256=meta["sha256"], assets=Path(assets),
                     default_sampler=meta.get("default_sampler", "ddim"), recipe=training_recipe(meta, cfg))
