"""An exact 2-D lab: a class-conditional Gaussian mixture whose every noisy marginal, score and noisy classifier is known
in closed form (issue #23), wrapped as a model so that the samplers and every guidance method run on it unchanged.

Under z_λ = α_λ x + σ_λ ε, a mixture Σ_k π_k N(μ_k, Σ_k) becomes Σ_k π_k N(α μ_k, α² Σ_k + σ² I), so

    ∇_z log p_λ(z | c) = −Σ_{k∈c} r_k(z) (α² Σ_k + σ² I)⁻¹ (z − α μ_k),    ε*(z, λ, c) = −σ_λ ∇_z log p_λ(z | c),

with r_k the responsibilities within class c (all components for the unconditional ε*(z, λ)). Points travel as
(B, 2, 1, 1) tensors; the maths runs in float64. The data lie inside [−1, 1]², and the lab samples with x̂ clipping off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.diffusion import LOGSNR_MAX, LOGSNR_MIN, alpha_sigma


@dataclass(frozen=True)
class Mixture:
    """A class-conditional Gaussian mixture in 2-D: component k has mean μ_k, covariance Σ_k, joint weight π_k (the π
    sum to 1 over all components) and class classes[k]; p(x | c) mixes class c's components."""

    means: tuple[tuple[float, float], ...]
    covs: tuple[tuple[tuple[float, float], tuple[float, float]], ...]
    weights: tuple[float, ...]
    classes: tuple[int, ...]
    class_names: tuple[str, ...]

    def __post_init__(self):
        k = len(self.means)
        if not (len(self.covs) == len(self.weights) == len(self.classes) == k > 0):
            raise ValueError("a mixture needs one mean, covariance, weight and class per component")
        if abs(sum(self.weights) - 1.0) > 1e-9 or min(self.weights) <= 0:
            raise ValueError(f"the joint weights π must be positive and sum to 1, got {self.weights}")
        if sorted(set(self.classes)) != list(range(len(self.class_names))):
            raise ValueError("every class needs at least one component, and classes are 0 … C − 1")
        for cov in self.covs:
            c = np.asarray(cov, np.float64)
            if not (np.allclose(c, c.T) and np.linalg.eigvalsh(c).min() > 0):
                raise ValueError(f"covariances must be symmetric positive definite, got {cov}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(μ (K, 2), Σ (K, 2, 2), log π (K,), class (K,)) as float64 / long tensors."""
        return (torch.tensor(self.means, dtype=torch.float64), torch.tensor(self.covs, dtype=torch.float64),
                torch.tensor(self.weights, dtype=torch.float64).log(), torch.tensor(self.classes))


def _component_log_probs(z: Tensor, mix: Mixture, logsnr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per point and component: log π_k + log N(z; α μ_k, α² Σ_k + σ² I), the precision-weighted residual
    P_k (z − α μ_k), and each component's class; z (B, 2) float64, λ (B,)."""
    mu, cov, log_pi, cls = mix.tensors()
    alpha, sigma = alpha_sigma(logsnr.to(torch.float64))
    # 1. The noisy components: mean α μ_k, covariance α² Σ_k + σ² I, per point (B, K, …).
    m = alpha[:, None, None] * mu[None]
    s = alpha[:, None, None, None] ** 2 * cov[None] + sigma[:, None, None, None] ** 2 * torch.eye(2, dtype=torch.float64)
    prec = torch.linalg.inv(s)
    d = z[:, None, :] - m
    pd = torch.einsum("bkij,bkj->bki", prec, d)
    # 2. The Gaussian log densities.
    quad = (d * pd).sum(-1)
    log_n = -0.5 * quad - 0.5 * torch.logdet(s) - math.log(2 * math.pi)
    return log_pi[None] + log_n, pd, cls


def _flat(z: Tensor) -> Tensor:
    assert z.dim() == 4 and z.shape[1:] == (2, 1, 1) or z.dim() == 2 and z.shape[1] == 2, z.shape
    return z.reshape(z.shape[0], 2).to(torch.float64)


def log_density(z: Tensor, mix: Mixture, logsnr: Tensor, c: Tensor | None = None) -> Tensor:
    """log p_λ(z | c) for each point (c = None: the unconditional log p_λ(z)); z (B, 2) or (B, 2, 1, 1)."""
    lp, _, cls = _component_log_probs(_flat(z), mix, logsnr)
    if c is None:
        return torch.logsumexp(lp, 1)
    own = cls[None, :] == c[:, None]
    log_pc = torch.logsumexp(mix.tensors()[2][None].expand_as(lp).masked_fill(~own, -math.inf), 1)
    return torch.logsumexp(lp.masked_fill(~own, -math.inf), 1) - log_pc


def score(z: Tensor, mix: Mixture, logsnr: Tensor, c: Tensor | None = None) -> Tensor:
    """∇_z log p_λ(z | c) (c = None: unconditional), (B, 2) float64: −Σ_k r_k P_k (z − α μ_k)."""
    lp, pd, cls = _component_log_probs(_flat(z), mix, logsnr)
    if c is not None:
        lp = lp.masked_fill(cls[None, :] != c[:, None], -math.inf)
    r = torch.softmax(lp, 1)
    return -(r[:, :, None] * pd).sum(1)


def log_classifier(z: Tensor, mix: Mixture, logsnr: Tensor) -> Tensor:
    """The exact noisy classifier log p_λ(c | z), (B, C)."""
    lp, _, cls = _component_log_probs(_flat(z), mix, logsnr)
    per_class = torch.stack([torch.logsumexp(lp[:, cls == k], 1) for k in range(mix.num_classes)], 1)
    return per_class - torch.logsumexp(lp, 1, keepdim=True)


@dataclass(frozen=True)
class ToyConfig:
    """What the samplers read from a model's cfg: the shape of a point, the classes and the λ range."""

    num_classes: int
    in_channels: int = 2
    image_size: int = 1
    logsnr_min: float = LOGSNR_MIN
    logsnr_max: float = LOGSNR_MAX

    @property
    def null_label(self) -> int:
        return self.num_classes

    @property
    def logsnr_range(self) -> tuple[float, float]:
        return (self.logsnr_min, self.logsnr_max)


class ExactModel(torch.nn.Module):
    """ε*(z, λ, c) = −σ_λ ∇_z log p_λ(z | c) of a mixture, as a model: labels 0 … C − 1, and the null label C for the
    unconditional ε*(z, λ). Like the UNet it maps (B, 2, 1, 1), λ (B,), c (B,) to ε (float32)."""

    def __init__(self, mix: Mixture):
        super().__init__()
        self.mix = mix
        self.cfg = ToyConfig(mix.num_classes)
        self.device_probe = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # the samplers read its device

    def forward(self, z: Tensor, logsnr: Tensor, c: Tensor) -> Tensor:
        assert z.dim() == 4 and z.shape[1:] == (2, 1, 1), z.shape
        assert logsnr.shape == (z.shape[0],) and c.shape == (z.shape[0],), (logsnr.shape, c.shape)
        _, sigma = alpha_sigma(logsnr.to(torch.float64))
        eps = torch.empty(z.shape[0], 2, dtype=torch.float64, device=z.device)
        uncond = c == self.cfg.null_label
        if uncond.any():
            eps[uncond] = -sigma[uncond, None] * score(z[uncond], self.mix, logsnr[uncond])
        if (~uncond).any():
            eps[~uncond] = -sigma[~uncond, None] * score(z[~uncond], self.mix, logsnr[~uncond], c[~uncond])
        return eps.to(z.dtype).reshape(z.shape)


PRESETS = {
    # Two classes whose supports overlap around the origin, so p(c | x) is far from 0 and 1 on a visible region.
    "overlap": Mixture(means=((-0.3, 0.0), (0.3, 0.0), (0.0, 0.45)),
                       covs=(((0.04, 0.0), (0.0, 0.04)), ((0.04, 0.0), (0.0, 0.04)), ((0.02, 0.0), (0.0, 0.02))),
                       weights=(0.4, 0.4, 0.2), classes=(0, 1, 1), class_names=("left", "right")),
}
