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
from functools import lru_cache

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


@lru_cache(maxsize=32)
def _mix_tensors(mix: Mixture) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """mix.tensors(), made once per mixture (read-only: callers never write into them)."""
    return mix.tensors()


def _component_log_probs(z: Tensor, mix: Mixture, logsnr: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor]:
    """Per component and point, (K, B): log π_k + log N(z; α μ_k, α² Σ_k + σ² I) and the precision-weighted residual
    P_k (z − α μ_k) as its (x, y) parts; and each component's class (K,); z (B, 2) float64, λ (B,). Components run
    along the first axis, so that sums and softmaxes over them are ten times faster than along the last."""
    mu, cov, log_pi, cls = _mix_tensors(mix)
    lam = logsnr.to(torch.float64)
    if lam.numel() > 1 and bool((lam == lam[0]).all()):
        lam = lam[:1]  # a sampler step: one noise level for the batch, so each component is worked out once
    alpha, sigma = alpha_sigma(lam)
    # 1. The noisy components (K, L), L = 1 or B: mean α μ_k, covariance α² Σ_k + σ² I and its inverse P_k.
    a2, s2 = (alpha**2)[None], (sigma**2)[None]
    sxx, sxy, syy = cov[:, 0, 0, None] * a2 + s2, cov[:, 0, 1, None] * a2, cov[:, 1, 1, None] * a2 + s2
    det = sxx * syy - sxy * sxy  # the 2 × 2 covariance's determinant and inverse, in closed form
    pxx, pxy, pyy = syy / det, -sxy / det, sxx / det
    const = log_pi[:, None] - 0.5 * torch.log(det) - math.log(2 * math.pi)
    # 2. Per component and point (K, B): the residual d = z − α μ_k, P_k d, and the Gaussian log densities.
    dx = z[None, :, 0] - mu[:, 0, None] * alpha[None]
    dy = z[None, :, 1] - mu[:, 1, None] * alpha[None]
    px, py = pxx * dx + pxy * dy, pxy * dx + pyy * dy
    return const - 0.5 * (dx * px + dy * py), (px, py), cls


def _flat(z: Tensor) -> Tensor:
    assert z.dim() == 4 and z.shape[1:] == (2, 1, 1) or z.dim() == 2 and z.shape[1] == 2, z.shape
    return z.reshape(z.shape[0], 2).to(torch.float64)


def _class_log_density(lp: Tensor, cls: Tensor, mix: Mixture, c: int) -> Tensor:
    """log p_λ(z | c) from the component log probabilities lp (K, B), for one class c."""
    own = cls == c
    return torch.logsumexp(lp[own], 0) - torch.logsumexp(_mix_tensors(mix)[2][own], 0)


def log_density(z: Tensor, mix: Mixture, logsnr: Tensor, c: Tensor | None = None) -> Tensor:
    """log p_λ(z | c) for each point (c = None: the unconditional log p_λ(z)); z (B, 2) or (B, 2, 1, 1)."""
    lp, _, cls = _component_log_probs(_flat(z), mix, logsnr)
    if c is None:
        return torch.logsumexp(lp, 0)
    own = cls[:, None] == c[None, :]
    log_pc = torch.logsumexp(_mix_tensors(mix)[2][:, None].expand_as(lp).masked_fill(~own, -math.inf), 0)
    return torch.logsumexp(lp.masked_fill(~own, -math.inf), 0) - log_pc


def _score_of(lp: Tensor, pd: tuple[Tensor, Tensor], cls: Tensor, c: Tensor | None, null: int) -> Tensor:
    """−Σ_k r_k P_k (z − α μ_k), r the responsibilities within each row's class (all components: c None or null)."""
    if c is not None:
        lp = lp.masked_fill((cls[:, None] != c[None, :]) & (c[None, :] != null), -math.inf)
    r = torch.softmax(lp, 0)
    return -torch.stack([(r * pd[0]).sum(0), (r * pd[1]).sum(0)], 1)


def score(z: Tensor, mix: Mixture, logsnr: Tensor, c: Tensor | None = None) -> Tensor:
    """∇_z log p_λ(z | c) (c = None, or a row's label = the null label C: unconditional), (B, 2) float64."""
    lp, pd, cls = _component_log_probs(_flat(z), mix, logsnr)
    return _score_of(lp, pd, cls, c, mix.num_classes)


def _log_classifier_of(lp: Tensor, cls: Tensor, num_classes: int) -> Tensor:
    per_class = torch.stack([torch.logsumexp(lp[cls == k], 0) for k in range(num_classes)], 1)
    return per_class - torch.logsumexp(lp, 0)[:, None]


def log_classifier(z: Tensor, mix: Mixture, logsnr: Tensor) -> Tensor:
    """The exact noisy classifier log p_λ(c | z), (B, C)."""
    lp, _, cls = _component_log_probs(_flat(z), mix, logsnr)
    return _log_classifier_of(lp, cls, mix.num_classes)


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


PAD = 64  # ExactModel computes every batch at a multiple of this many points (see its forward)


def _padded(t: Tensor, n: int) -> Tensor:
    """t (B, …) with its last row repeated up to n rows."""
    return torch.cat([t, t[-1:].expand(n - t.shape[0], *t.shape[1:])]) if n > t.shape[0] else t


class ExactModel(torch.nn.Module):
    """ε*(z, λ, c) = −σ_λ ∇_z log p_λ(z | c) of a mixture, as a model: labels 0 … C − 1, and the null label C for the
    unconditional ε*(z, λ). Like the UNet it maps (B, 2, 1, 1), λ (B,), c (B,) to ε (float32)."""

    def __init__(self, mix: Mixture):
        super().__init__()
        self.mix = mix
        self.cfg = ToyConfig(mix.num_classes)
        # The samplers read the device and dtype of a model's first parameter: the lab samples in float64.
        self.device_probe = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64), requires_grad=False)

    def forward(self, z: Tensor, logsnr: Tensor, c: Tensor) -> Tensor:
        assert z.dim() == 4 and z.shape[1:] == (2, 1, 1), z.shape
        assert logsnr.shape == (z.shape[0],) and c.shape == (z.shape[0],), (logsnr.shape, c.shape)
        _, sigma = alpha_sigma(logsnr.to(torch.float64))
        zf, h, b, null = _flat(z), z.shape[0] // 2, z.shape[0], self.mix.num_classes
        # CFG's [cond; uncond] pass holds every point twice: then one set of component densities serves both halves.
        dup = h > 0 and b == 2 * h and torch.equal(zf[:h], zf[h:]) and torch.equal(logsnr[:h], logsnr[h:])
        pts = h if dup else b
        # The softmax over components runs vectorised along the points, with a scalar tail that rounds differently;
        # at a multiple of PAD points there is no tail, so a point's ε is the same alone or inside a grid, bit for bit.
        n = -(-pts // PAD) * PAD
        lp, pd, cls = _component_log_probs(_padded(zf[:pts], n), self.mix, _padded(logsnr[:pts], n))
        halves = (c[:h], c[h:]) if dup else (c,)
        s = torch.cat([_score_of(lp, pd, cls, _padded(ci, n), null)[:pts] for ci in halves])
        return (-sigma[:, None] * s).to(z.dtype).reshape(z.shape)  # float64 in the lab


def degraded(mix: Mixture, inflate: float = 2.0) -> Mixture:
    """Autoguidance's "bad model" for the lab: the same mixture with every covariance inflated by `inflate`, the analogue
    of a smaller, less-trained network's blurrier density (Karras et al. 2024)."""
    covs = tuple(tuple(tuple(inflate * v for v in row) for row in cov) for cov in mix.covs)
    return Mixture(mix.means, covs, mix.weights, mix.classes, mix.class_names)


GRID_LIM, GRID_N = 1.6, 321  # the density grid: [−1.6, 1.6]², 321 × 321 points (a step of 0.01)


def density_grid(n: int = GRID_N, lim: float = GRID_LIM) -> Tensor:
    """The lab's grid points, (n², 2) float64, row-major over (y, x)."""
    t = torch.linspace(-lim, lim, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


@lru_cache(maxsize=16)
def _grid_logs(mix: Mixture, c: int, grid_n: int = GRID_N) -> tuple[Tensor, Tensor, Tensor]:
    """(the grid, log p(x | c), log p(x)) on it, computed once per mixture and class."""
    x = density_grid(grid_n)
    hi = torch.full((x.shape[0],), LOGSNR_MAX, dtype=torch.float64)
    return x, log_density(x, mix, hi, torch.full((x.shape[0],), c, dtype=torch.long)), log_density(x, mix, hi)


def tilted_log_density(x: Tensor, mix: Mixture, c: int, w: float) -> Tensor:
    """log of p_w(x | c) ∝ p(x | c)^{1+w} p(x)^{−w} = p(x | c) p(c | x)^w / p(c)^w, unnormalised: the density CFG is
    often said to sample (it does not, Bradley & Nakkiran 2024)."""
    hi = torch.full((x.shape[0],), LOGSNR_MAX, dtype=torch.float64)  # λ_max: the data's density
    lc = log_density(x, mix, hi, torch.full((x.shape[0],), c, dtype=torch.long))
    return (1.0 + w) * lc - w * log_density(x, mix, hi)


def sample_tilted(mix: Mixture, c: int, w: float, n: int, seed: int = 0, grid_n: int = GRID_N) -> Tensor:
    """n exact draws from p_w(x | c) by inverse CDF on the grid, jittered uniformly within the cell, (n, 2) float64."""
    x, log_pc, log_p = _grid_logs(mix, c, grid_n)
    prob = torch.softmax((1.0 + w) * log_pc - w * log_p, 0)
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(prob, n, replacement=True, generator=g)
    cell = 2 * GRID_LIM / (grid_n - 1)
    return x[idx] + (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * cell


def energy_distance(a: Tensor, b: Tensor) -> float:
    """The energy distance 2 E‖a − b‖ − E‖a − a'‖ − E‖b − b'‖ (≥ 0, 0 iff equal distributions), V-statistic."""
    return 2 * _mean_distance(a, b) - _mean_distance(a, a) - _mean_distance(b, b)


def _mean_distance(a: Tensor, b: Tensor) -> float:
    """E‖a − b‖ over all pairs, in float32 (distances and their sum: three times as fast as float64), within 1e-7 of
    the float64 mean for points in the lab's box."""
    return float(torch.cdist(a.float(), b.float()).sum()) / (a.shape[0] * b.shape[0])


@lru_cache(maxsize=64)
def _exact_draws(mix: Mixture, c: int, w: float, n: int, seed: int) -> tuple[Tensor, float]:
    """n exact draws of p_w(x | c) and their own mean distance, computed once per request (every method and every
    call of the lab measures against the same draws)."""
    d = sample_tilted(mix, c, w, n, seed=seed)
    return d, _mean_distance(d, d)


@lru_cache(maxsize=64)
def _draws_floor(mix: Mixture, c: int, w: float, n: int) -> float:
    """The energy distance between two independent sets of n exact draws of p_w(x | c): the noise floor."""
    (tilt, tt), (other, oo) = _exact_draws(mix, c, w, n, 2), _exact_draws(mix, c, w, n, 3)
    return 2 * _mean_distance(other, tilt) - oo - tt


def _data_log_probs(x: Tensor, mix: Mixture) -> tuple[Tensor, Tensor]:
    """The component log probabilities of points x at λ_max (the data's density) and each component's class."""
    xs = _flat(x)
    lp, _, cls = _component_log_probs(xs, mix, torch.full((xs.shape[0],), LOGSNR_MAX, dtype=torch.float64))
    return lp, cls


def _coverage_of(lp: Tensor, cls: Tensor, c: int, min_share: float) -> float:
    own = torch.nonzero(cls == c).flatten()
    best = own[lp[own].argmax(0)]
    shares = torch.stack([(best == k).double().mean() for k in own])
    return float((shares >= min_share).double().mean())


def mode_coverage(x: Tensor, mix: Mixture, c: int, min_share: float = 0.02) -> float:
    """Diversity: the share of class c's components that receive at least min_share of the samples, each sample
    assigned to its most responsible component of class c."""
    return _coverage_of(*_data_log_probs(x, mix), c, min_share)


@lru_cache(maxsize=64)
def _region_level(mix: Mixture, c: int, mass: float) -> float:
    """The log p(x | c) level whose super-level set holds `mass` of p(x | c), found on the grid."""
    _, logp, _ = _grid_logs(mix, c)
    p = torch.softmax(logp, 0)
    order = torch.argsort(p, descending=True)
    return float(logp[order[torch.searchsorted(torch.cumsum(p[order], 0), torch.tensor(mass, dtype=torch.float64))]])


def outside_share(x: Tensor, mix: Mixture, c: int, mass: float = 0.95) -> float:
    """The share of samples outside class c's highest-density region holding `mass` of p(x | c), found on the grid
    (Chidambaram et al. 2024: guidance pushes samples to the edge of the support, and past it)."""
    return _outside_of(*_data_log_probs(x, mix), mix, c, mass)


def _outside_of(lp: Tensor, cls: Tensor, mix: Mixture, c: int, mass: float) -> float:
    return float((_class_log_density(lp, cls, mix, c) < _region_level(mix, c, mass)).double().mean())


def fidelity(x: Tensor, mix: Mixture, c: int) -> float:
    """Fidelity: the mean exact log p(c | x) of the samples (0 is certain)."""
    return _fidelity_of(*_data_log_probs(x, mix), mix, c)


def _fidelity_of(lp: Tensor, cls: Tensor, mix: Mixture, c: int) -> float:
    return float(_log_classifier_of(lp, cls, mix.num_classes)[:, c].mean())


PRESETS = {
    # Three classes far apart: p(c | x) is 0 or 1 almost everywhere, so guidance has little to do.
    "separated": Mixture(means=((-0.55, -0.35), (0.55, -0.35), (0.0, 0.55)),
                         covs=(((0.02, 0.0), (0.0, 0.02)),) * 3, weights=(1 / 3, 1 / 3, 1 / 3), classes=(0, 1, 2),
                         class_names=("a", "b", "c")),
    # Class 0 has a rare, thin mode (5 % of its mass): guidance's loss of diversity shows as that mode disappearing.
    "rare-mode": Mixture(means=((-0.35, 0.0), (0.45, 0.55), (0.35, -0.1)),
                         covs=(((0.05, 0.0), (0.0, 0.05)), ((0.004, 0.0), (0.0, 0.004)), ((0.05, 0.0), (0.0, 0.05))),
                         weights=(0.475, 0.025, 0.5), classes=(0, 0, 1), class_names=("with a rare mode", "other")),
    # Two classes whose supports overlap around the origin, so p(c | x) is far from 0 and 1 on a visible region.
    "overlap": Mixture(means=((-0.3, 0.0), (0.3, 0.0), (0.0, 0.45)),
                       covs=(((0.04, 0.0), (0.0, 0.04)), ((0.04, 0.0), (0.0, 0.04)), ((0.02, 0.0), (0.0, 0.02))),
                       weights=(0.4, 0.4, 0.2), classes=(0, 1, 1), class_names=("left", "right")),
}


@dataclass(frozen=True)
class LabRow:
    """What the lab measures for one method and w on class c (energy distances against exact draws)."""

    method: str
    w: float
    fidelity: float
    coverage: float
    outside: float
    to_data: float
    to_tilted: float
    floor: float

    def text(self) -> str:
        return (f"{self.method:>13} w = {self.w:4g} (s = {1 + self.w:g}): mean log p(c|x) {self.fidelity:7.3f}  "
                f"mode coverage {self.coverage:.2f}  outside the 95 % region {self.outside:.3f}  energy to p(x|c) "
                f"{self.to_data:.4f}  to p_w {self.to_tilted:.4f}  (two exact draws: {self.floor:.4f})")


def measure_grid(mix: Mixture, c: int, ws: list[float], sampling, n: int = 2000, guide: Mixture | None = None,
                 seed: int = 0) -> list[tuple[LabRow, Tensor]]:
    """Sample class c at every w in one batched run on the same seeds (with an exact weaker guide for autoguidance),
    then read, per w, fidelity, mode coverage, the share outside the 95 % region and the energy distances to exact
    draws of p(x | c) and of the tilted p_w(x | c); returns (row, samples (n, 2)) per w."""
    from core.sampling import generate

    x = generate(ExactModel(mix).eval(), list(range(seed, seed + n)), [c] * n, list(ws), sampling,
                 guide_model=ExactModel(guide).eval() if guide is not None else None).reshape(len(ws), n, 2).double()
    ref, rr = _exact_draws(mix, c, 0.0, n, 1)
    out = []
    for w, xw in zip(ws, x):
        # energy distances to exact draws of p(x | c) and of p_w, sharing the samples' own term (energy_distance's sum)
        (tilt, tt), xx = _exact_draws(mix, c, float(w), n, 2), _mean_distance(xw, xw)
        lp, cls = _data_log_probs(xw, mix)  # fidelity, coverage and the region all read the data's density once
        row = LabRow(sampling.opts.method, w, _fidelity_of(lp, cls, mix, c), _coverage_of(lp, cls, c, 0.02),
                     _outside_of(lp, cls, mix, c, 0.95), 2 * _mean_distance(xw, ref) - xx - rr,
                     2 * _mean_distance(xw, tilt) - xx - tt, _draws_floor(mix, c, float(w), n))
        out.append((row, xw))
    return out


def measure(mix: Mixture, c: int, w: float, sampling, n: int = 2000, guide: Mixture | None = None,
            seed: int = 0) -> tuple[LabRow, Tensor]:
    """measure_grid at one w."""
    return measure_grid(mix, c, [w], sampling, n, guide, seed)[0]
