"""Continuous-time log-SNR diffusion in the notation of Ho & Salimans (2021), Sec. 2.

z_λ = α_λ x + σ_λ ε with α_λ² = sigmoid(λ) and σ_λ² = sigmoid(−λ).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

LOGSNR_MIN = -20.0
LOGSNR_MAX = 20.0


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample (B,) tensor so it broadcasts over an image batch (B, C, H, W)."""
    if v.dim() == 0:
        return v
    assert v.shape[0] == like.shape[0], (v.shape, like.shape)
    return v.reshape(v.shape[0], *([1] * (like.dim() - 1)))


def alpha_sigma(logsnr: Tensor) -> tuple[Tensor, Tensor]:
    """α_λ = √sigmoid(λ), σ_λ = √sigmoid(−λ) (paper Sec. 2)."""
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def _cosine_ab(logsnr_min: float, logsnr_max: float) -> tuple[float, float]:
    b = math.atan(math.exp(-0.5 * logsnr_max))
    a = math.atan(math.exp(-0.5 * logsnr_min)) - b
    return a, b


def logsnr_schedule_cosine(u: Tensor, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> Tensor:
    """Cosine schedule λ(u) = −2 log tan(a·u + b), λ(0) = λ_max, λ(1) = λ_min (paper Sec. 2, Nichol & Dhariwal)."""
    a, b = _cosine_ab(logsnr_min, logsnr_max)
    u64 = u.to(torch.float64)
    return (-2.0 * torch.log(torch.tan(a * u64 + b))).clamp(logsnr_min, logsnr_max).to(u.dtype)


def u_from_logsnr(logsnr: Tensor, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> Tensor:
    """Inverse of the cosine schedule: u(λ) = (arctan(e^{−λ/2}) − b) / a."""
    a, b = _cosine_ab(logsnr_min, logsnr_max)
    l64 = logsnr.to(torch.float64)
    return ((torch.atan(torch.exp(-0.5 * l64)) - b) / a).to(logsnr.dtype)


def diffuse(x: Tensor, logsnr: Tensor, eps: Tensor) -> Tensor:
    """Forward process z_λ = α_λ x + σ_λ ε (paper Eq. 1)."""
    assert x.shape == eps.shape, (x.shape, eps.shape)
    alpha, sigma = alpha_sigma(logsnr)
    return _bcast(alpha, x) * x + _bcast(sigma, x) * eps


def x_from_eps(z: Tensor, eps: Tensor, logsnr: Tensor) -> Tensor:
    """x̂ = (z_λ − σ_λ ε) / α_λ (paper Sec. 2, ε-parameterisation)."""
    assert z.shape == eps.shape, (z.shape, eps.shape)
    alpha, sigma = alpha_sigma(logsnr)
    return (z - _bcast(sigma, z) * eps) / _bcast(alpha, z)


def eps_from_x(z: Tensor, x: Tensor, logsnr: Tensor) -> Tensor:
    """ε = (z_λ − α_λ x̂) / σ_λ, the inverse of x_from_eps."""
    assert z.shape == x.shape, (z.shape, x.shape)
    alpha, sigma = alpha_sigma(logsnr)
    return (z - _bcast(alpha, z) * x) / _bcast(sigma, z)


def posterior(z: Tensor, x: Tensor, logsnr: Tensor, logsnr_next: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q(z_λ' | z_λ, x) for λ < λ': returns (mean μ̃, variance σ̃², forward variance σ²_{λ|λ'}) (paper Sec. 2)."""
    assert z.shape == x.shape, (z.shape, x.shape)
    alpha, sigma = alpha_sigma(logsnr)
    alpha_n, sigma_n = alpha_sigma(logsnr_next)
    # r = e^{λ − λ'} ∈ (0, 1): how much of the signal-to-noise gap remains.
    r = torch.exp(logsnr - logsnr_next)
    mean = _bcast(r * alpha_n / alpha, z) * z + _bcast((1.0 - r) * alpha_n, z) * x
    var_tilde = (1.0 - r) * sigma_n**2
    var_fwd = (1.0 - r) * sigma**2
    return mean, var_tilde, var_fwd


# The network's output, and its one conversion to ε at the model boundary (samplers and guidance only ever see ε).
PREDICTIONS = ("eps", "v", "edm")
EDM_LOGSNR_MEAN, EDM_LOGSNR_STD = 2.4, 2.4  # EDM's ln σ ~ N(−1.2, 1.2²) with σ = e^{−λ/2} (Karras et al. 2022)


def edm_scales(logsnr: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM preconditioning in VP form: (α, σ, D = σ² + α²σ_d², c_in = 1/√D), so that the net's input z·c_in and its
    target F = (x − σ_d² α z / D)·√D / (σ σ_d) have unit variance at every λ (Karras et al. 2022, Table 1)."""
    alpha, sigma = alpha_sigma(logsnr)
    d = sigma**2 + alpha**2 * sigma_data**2
    return alpha, sigma, d, d.rsqrt()


def input_scale(logsnr: Tensor, prediction: str, sigma_data: float) -> Tensor | None:
    """The factor the net's input z is multiplied by: EDM's c_in, else None (z as it is)."""
    return edm_scales(logsnr, sigma_data)[3] if prediction == "edm" else None


def eps_from_output(z: Tensor, out: Tensor, logsnr: Tensor, prediction: str, sigma_data: float = 0.5) -> Tensor:
    """ε from the raw output: ε itself; v (Salimans & Ho 2022): ε = σ z + α v; EDM's F: ε = σ z / D − α σ_d F / √D."""
    assert z.shape == out.shape, (z.shape, out.shape)
    if prediction == "eps":
        return out
    if prediction == "v":
        alpha, sigma = alpha_sigma(logsnr)
        return _bcast(sigma, z) * z + _bcast(alpha, z) * out
    assert prediction == "edm", prediction
    alpha, sigma, d, c_in = edm_scales(logsnr, sigma_data)
    return _bcast(sigma / d, z) * z - _bcast(alpha * sigma_data * c_in, z) * out


def output_target(x: Tensor, eps: Tensor, logsnr: Tensor, prediction: str, sigma_data: float = 0.5) -> Tensor:
    """What the raw output should be for z = α x + σ ε: ε, v = α ε − σ x, or EDM's F (the inverse of eps_from_output)."""
    assert x.shape == eps.shape, (x.shape, eps.shape)
    if prediction == "eps":
        return eps
    alpha, sigma = alpha_sigma(logsnr)
    if prediction == "v":
        return _bcast(alpha, x) * eps - _bcast(sigma, x) * x
    assert prediction == "edm", prediction
    alpha, sigma, d, c_in = edm_scales(logsnr, sigma_data)
    z = diffuse(x, logsnr, eps)
    return (x - _bcast(sigma_data**2 * alpha / d, x) * z) * _bcast(1.0 / (c_in * sigma * sigma_data), x)


def training_logsnr(u: Tensor, prediction: str, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX,
                    gen: torch.Generator | None = None) -> Tensor:
    """λ for training: the cosine schedule at uniform u (paper Alg. 1), or EDM's log-normal noise levels."""
    if prediction != "edm":
        return logsnr_schedule_cosine(u, logsnr_min, logsnr_max)
    n = torch.randn(u.shape, device=u.device, generator=gen)
    return (EDM_LOGSNR_MEAN + EDM_LOGSNR_STD * n).clamp(logsnr_min, logsnr_max)
