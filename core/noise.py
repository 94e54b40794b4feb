"""Per-sample seeded noise: same seed ⇒ same initial z and per-step noise, whatever else shares the batch.

Also the truncation trick (BigGAN, Brock et al. 2018) and noise temperature, the seed's motivation slide.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class NoiseConfig:
    """Truncation threshold (None = off) and temperatures of the initial and per-step noise."""

    truncation: float | None = None
    temperature: float = 1.0
    step_temperature: float = 1.0

    def __post_init__(self):
        if self.truncation is not None and not self.truncation > 0:
            raise ValueError(f"truncation threshold must be > 0, got {self.truncation}")
        if not (self.temperature >= 0 and self.step_temperature >= 0):
            raise ValueError("noise temperatures must be ≥ 0")


def truncated_normal(shape: tuple[int, ...], threshold: float, generator: torch.Generator) -> Tensor:
    """N(0, 1) conditioned on |x| ≤ threshold, i.e. what BigGAN's resampling converges to; drawn by inverse CDF."""
    assert threshold > 0, threshold
    lo = torch.special.ndtr(torch.tensor(-threshold, dtype=torch.float64))
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    x = torch.special.ndtri(lo + u * (1.0 - 2.0 * lo))
    return x.clamp(-threshold, threshold).float()


class SeededNoise:
    """One torch.Generator per sample, seeded with seed_i alone; draws happen in the same order for every sample.

    tiles > 1 stands for the seeds repeated `tiles` times (a same-seed grid, one copy per w): the draws are made once
    per seed and tiled, which gives the same values as one generator per row at 1/tiles of the cost.
    """

    def __init__(self, seeds: list[int], shape: tuple[int, ...], cfg: NoiseConfig = NoiseConfig(),
                 device: torch.device | str = "cpu", tiles: int = 1, dtype: torch.dtype = torch.float32):
        for s in seeds:
            if not (isinstance(s, int) and 0 <= s < 2**63):
                raise ValueError(f"seed must be an integer in [0, 2^63), got {s!r}")
        assert tiles >= 1, tiles
        self.base_seeds = list(seeds)
        self.tiles = tiles
        self.shape = tuple(shape)
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = dtype  # the draws are float32 (the same values on every device), handed over in this dtype
        self.gens = [torch.Generator().manual_seed(s) for s in self.base_seeds]

    @property
    def seeds(self) -> list[int]:
        """The seed of every row: base_seeds repeated `tiles` times."""
        return self.base_seeds * self.tiles

    def __len__(self) -> int:
        return len(self.base_seeds) * self.tiles

    def initial(self) -> Tensor:
        """z_{λ_min} ~ N(0, τ² I), optionally truncated at the threshold before scaling; (B, *shape)."""
        if self.cfg.truncation is None:
            zs = [torch.randn(self.shape, generator=g) for g in self.gens]
        else:
            zs = [truncated_normal(self.shape, self.cfg.truncation, g) for g in self.gens]
        return self._tiled(torch.stack(zs) * self.cfg.temperature)

    def step(self) -> Tensor:
        """Fresh per-step noise ε ~ N(0, τ_step² I), (B, *shape)."""
        return self._tiled(torch.stack([torch.randn(self.shape, generator=g) for g in self.gens]) * self.cfg.step_temperature)

    def repeat(self, n: int) -> "SeededNoise":
        """The same seeds tiled n times (for a grid of n w values on one set of seeds)."""
        return SeededNoise(self.base_seeds, self.shape, self.cfg, self.device, self.tiles * n, self.dtype)

    def _tiled(self, x: Tensor) -> Tensor:
        # Noise is drawn on the CPU (so a seed gives the same pixels on every device); on CUDA it goes through
        # pinned memory asynchronously, so the sampling loop never waits on a host→device copy. Tiled on the device.
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, self.dtype, non_blocking=True)
        else:
            x = x.to(self.device, self.dtype)
        return x.repeat(self.tiles, *([1] * (x.dim() - 1))) if self.tiles > 1 else x
