"""Image classifiers: the metric backbone (our stand-in for Inception) and the noisy p_φ(c | z_λ, λ) of classifier guidance."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from core.unet import logsnr_embedding


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of an image classifier; saved as JSON next to the weights."""

    channels: tuple[int, ...] = (32, 64)
    feature_dim: int = 128
    num_classes: int = 10
    noise_conditional: bool = False
    emb_dim: int = 64
    in_channels: int = 1
    image_size: int = 28  # divisible by 4: two 2× poolings

    def to_json(self) -> str:
        """Serialise to JSON."""
        return json.dumps(asdict(self), indent=2)

    @staticmethod
    def from_dict(d: dict) -> "ClassifierConfig":
        """Inverse of to_json / asdict."""
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return ClassifierConfig(**d)


class ImageClassifier(nn.Module):
    """A small CNN; features() gives the penultimate layer (FID/KID), forward() the logits (IS, accuracy)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        c1, c2 = cfg.channels
        self.conv = nn.ModuleList([
            nn.Conv2d(cfg.in_channels, c1, 3, padding=1), nn.Conv2d(c1, c1, 3, padding=1),
            nn.Conv2d(c1, c2, 3, padding=1), nn.Conv2d(c2, c2, 3, padding=1),
        ])
        self.norms = nn.ModuleList([nn.GroupNorm(8, c) for c in (c1, c1, c2, c2)])
        if cfg.noise_conditional:
            self.emb = nn.Sequential(nn.Linear(cfg.emb_dim, cfg.emb_dim), nn.SiLU(), nn.Linear(cfg.emb_dim, 2 * (c1 + c1 + c2 + c2)))
        self.fc = nn.Linear(c2 * (cfg.image_size // 4) ** 2, cfg.feature_dim)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: Tensor, logsnr: Tensor | None = None) -> Tensor:
        """Penultimate features (B, feature_dim) of images (B, C, H, W) in [−1, 1] (or noisy z_λ with its λ)."""
        cfg = self.cfg
        assert x.dim() == 4 and x.shape[1:] == (cfg.in_channels, cfg.image_size, cfg.image_size), x.shape
        if self.cfg.noise_conditional:
            assert logsnr is not None and logsnr.shape == (x.shape[0],), "noise-conditional classifier needs λ (B,)"
            films = self.emb(logsnr_embedding(logsnr, self.cfg.emb_dim).to(x.dtype))
            sizes = [m.out_channels for m in self.conv]
            films = torch.split(films, [2 * s for s in sizes], dim=1)
        h = x
        for i, (conv, norm) in enumerate(zip(self.conv, self.norms)):
            h = norm(conv(h))
            if self.cfg.noise_conditional:
                scale, shift = films[i][:, :, None, None].chunk(2, dim=1)
                h = h * (1.0 + scale) + shift
            h = F.silu(h)
            if i % 2 == 1:
                h = F.avg_pool2d(h, 2)
        return F.silu(self.fc(h.flatten(1)))

    def forward(self, x: Tensor, logsnr: Tensor | None = None) -> Tensor:
        """Logits (B, num_classes)."""
        return self.head(self.features(x, logsnr))
