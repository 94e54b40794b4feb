"""Guidance as denoiser → denoiser transforms: classifier-free guidance (Ho & Salimans 2021, Eq. 6),
its variants (dynamic thresholding, CFG-rescale, guidance interval) and classifier guidance (Dhariwal & Nichol 2021).

A *model* is ε_θ(z, λ (B,), c (B,)) → ε. A *denoiser* is f(z, λ: float) → EpsOut, with the labels and
guidance weights already bound; samplers only ever see denoisers. λ is a Python float (all samples of a
batch share one time), so no per-step device→host sync is needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Protocol

import torch
from torch import Tensor

from core.diffusion import alpha_sigma, eps_from_x, x_from_eps


class EpsOut(NamedTuple):
    """Guided ε̃, plus the two terms it was made from; eps_uncond is None when that half was skipped."""

    eps: Tensor
    eps_cond: Tensor
    eps_uncond: Tensor | None


Model = Callable[[Tensor, Tensor, Tensor], Tensor]


class Denoiser(Protocol):
    def __call__(self, z: Tensor, logsnr: float) -> EpsOut: ...


@dataclass(frozen=True)
class GuidanceOptions:
    """Optional, composable variants of CFG.

    dynamic_threshold: Imagen's percentile p (e.g. 0.995) of |x̂|; clip to s = max(1, that) and divide by s.
    rescale_phi: CFG-rescale φ of Lin et al. (2023), applied to x̂ (0 = off).
    interval: guide only while λ ∈ [λ_lo, λ_hi] (Kynkäänniemi et al. 2024); None = always.
    always_uncond: compute ε_θ(z) even when every w is 0 (for the implicit-classifier view).
    amp_dtype: "bf16"/"fp16" autocast for the network on CUDA; None = float32.
    """

    dynamic_threshold: float | None = None
    rescale_phi: float = 0.0
    interval: tuple[float, float] | None = None
    always_uncond: bool = False
    amp_dtype: str | None = None

    def __post_init__(self):
        if self.dynamic_threshold is not None and not (0.5 <= self.dynamic_threshold <= 1.0):
            raise ValueError(f"dynamic-threshold percentile must be in [0.5, 1], got {self.dynamic_threshold}")
        if not (0.0 <= self.rescale_phi <= 1.0):
            raise ValueError(f"rescale φ must be in [0, 1], got {self.rescale_phi}")
        if self.interval is not None and not (self.interval[0] <= self.interval[1]):
            raise ValueError(f"guidance interval needs λ_lo ≤ λ_hi, got {self.interval}")


def cfg_combine(eps_cond: Tensor, eps_uncond: Tensor, w: Tensor) -> Tensor:
    """ε̃ = (1 + w) ε_θ(z, c) − w ε_θ(z) (paper Eq. 6), w per sample (B,)."""
    wb = w.reshape(-1, *([1] * (eps_cond.dim() - 1))).to(eps_cond.dtype)
    return (1.0 + wb) * eps_cond - wb * eps_uncond


def dynamic_threshold_x(x: Tensor, p: float) -> Tensor:
    """Imagen dynamic thresholding: s = max(1, quantile_p |x̂|) per sample, x̂ ← clip(x̂, −s, s) / s."""
    s = torch.quantile(x.abs().flatten(1).float(), p, dim=1).clamp(min=1.0).to(x.dtype)
    s = s.reshape(-1, *([1] * (x.dim() - 1)))
    return x.clamp(-s, s) / s


def rescale_x(x_guided: Tensor, x_cond: Tensor, phi: float) -> Tensor:
    """CFG-rescale (Lin et al. 2023, Alg. 2) in x̂ space: match the std of the conditional prediction, mix by φ."""
    dims = tuple(range(1, x_guided.dim()))
    ratio = x_cond.std(dim=dims, keepdim=True) / x_guided.std(dim=dims, keepdim=True).clamp(min=1e-8)
    return phi * (x_guided * ratio) + (1.0 - phi) * x_guided


def _run_model(model: Model, z: Tensor, logsnr: Tensor, c: Tensor, amp_dtype: str | None) -> Tensor:
    if z.device.type == "cuda" and amp_dtype in ("bf16", "fp16"):
        with torch.autocast("cuda", dtype=torch.bfloat16 if amp_dtype == "bf16" else torch.float16):
            return model(z, logsnr, c).float()
    return model(z, logsnr, c)


class RowPlan(NamedTuple):
    """The rows of one batched network pass: every row's label, the rows that also get ε_θ(z), and the labels of the
    [cond; uncond] batch (the uncond half carries the null label)."""

    c: Tensor
    rows_u: Tensor
    c_both: Tensor


def row_plan(c: Tensor, rows_u: Tensor, null_label: int) -> RowPlan:
    """The plan for labels c (B,) whose rows rows_u (host indices) also need the unconditional ε_θ(z)."""
    rows_u = rows_u.to(c.device)
    null = torch.full((rows_u.numel(),), null_label, dtype=c.dtype, device=c.device)
    return RowPlan(c, rows_u, torch.cat([c, null]))


def eps_pair(model: Model, z: Tensor, logsnr: float, plan: RowPlan, need_u: bool,
             amp_dtype: str | None = None) -> tuple[Tensor, Tensor | None]:
    """(ε_θ(z, c), ε_θ(z) or None) in one forward pass; rows outside plan.rows_u get eps_uncond = eps_cond."""
    b, n_u = z.shape[0], plan.rows_u.numel()
    assert plan.c.shape == (b,), (plan.c.shape, z.shape)
    if not need_u:
        return _run_model(model, z, torch.full((b,), float(logsnr), device=z.device), plan.c, amp_dtype), None
    z_u = z if n_u == b else z.index_select(0, plan.rows_u)
    both = _run_model(model, torch.cat([z, z_u]), torch.full((b + n_u,), float(logsnr), device=z.device), plan.c_both,
                      amp_dtype)
    eps_c = both[:b]
    return eps_c, (both[b:] if n_u == b else eps_c.index_copy(0, plan.rows_u, both[b:]))


class CFGDenoiser:
    """Classifier-free guidance as a denoiser transform (paper Alg. 2): one batched [cond; uncond] pass per step.

    c: labels (B,) in 0..K−1; w: guidance weights (B,), any real value (w = −1 is the unconditional model).
    Rows with w = 0 get no uncond pass (their eps_uncond is a copy of eps_cond); with no guided row at this λ
    the uncond half is skipped entirely and eps_uncond is None.
    first_step_tiles = n > 1 promises that the rows are n copies of the first B/n (label, seed) pairs and that the
    first call's z is n identical copies (a same-seed grid's shared initial noise): ε_θ then runs on one copy and is
    tiled, bitwise the same result for a batch-invariant model at 1/n of that step's network rows.
    """

    def __init__(self, model: Model, c: Tensor, w: Tensor, null_label: int, opts: GuidanceOptions = GuidanceOptions(),
                 first_step_tiles: int = 1):
        assert c.dim() == 1 and w.shape == c.shape, (c.shape, w.shape)
        n = first_step_tiles
        assert n >= 1 and c.shape[0] % n == 0, (n, c.shape)
        w_host = w.detach().to("cpu", torch.float64)
        if not torch.isfinite(w_host).all():
            raise ValueError("guidance weights must be finite")
        if n > 1:  # (a host copy of the labels: one sync on CUDA, before sampling, and only for a tiled grid)
            c_host = c.detach().cpu()
            assert torch.equal(c_host, c_host[: c.shape[0] // n].repeat(n)), "first_step_tiles needs labels tiled like the seeds"
        self.model, self.opts, self.tiles = model, opts, n
        self.w = w.to(c.device, torch.float32)
        self.any_w = bool((w_host != 0).any())
        # Rows with w = 0 need no ε_θ(z): the uncond half covers only the guided rows (host-side index, no syncs).
        rows_u = torch.arange(c.shape[0]) if opts.always_uncond else torch.nonzero(w_host != 0).flatten()
        self.plan = row_plan(c, rows_u, null_label)
        # The first step's plan: one copy of the rows, all of which get ε_θ(z); the mask keeps it for guided rows only.
        n_one = c.shape[0] // n
        self.first_plan = row_plan(c[:n_one], torch.arange(n_one), null_label)
        mask_u = torch.zeros(c.shape[0], dtype=torch.bool)
        mask_u[rows_u] = True
        self.first_mask_u = mask_u.to(c.device).reshape(-1, *([1] * 3))
        self.calls = 0

    def __call__(self, z: Tensor, logsnr: float) -> EpsOut:
        opts = self.opts
        assert z.shape[0] == self.plan.c.shape[0], (z.shape, self.plan.c.shape)
        guided = self.any_w and (opts.interval is None or opts.interval[0] <= logsnr <= opts.interval[1])
        need_u = guided or opts.always_uncond
        # 1. The network: cond only, or cond and (guided rows') uncond in one forward pass; at a tiled grid's first
        #    step, on one copy of the rows only.
        if self.calls == 0 and self.tiles > 1:
            n_one = z.shape[0] // self.tiles
            eps_c, eps_u = eps_pair(self.model, z[:n_one], logsnr, self.first_plan, need_u, opts.amp_dtype)
            eps_c = eps_c.repeat(self.tiles, 1, 1, 1)
            if eps_u is not None:
                eps_u = torch.where(self.first_mask_u, eps_u.repeat(self.tiles, 1, 1, 1), eps_c)
        else:
            eps_c, eps_u = eps_pair(self.model, z, logsnr, self.plan, need_u, opts.amp_dtype)
        self.calls += 1
        eps = cfg_combine(eps_c, eps_u, self.w) if guided else eps_c
        # 2. The x̂-space variants, then back to ε.
        if (guided and opts.rescale_phi > 0) or opts.dynamic_threshold is not None:
            lam0 = torch.tensor(float(logsnr), dtype=torch.float64)
            x = x_from_eps(z, eps, lam0)
            if guided and opts.rescale_phi > 0:
                x = rescale_x(x, x_from_eps(z, eps_c, lam0), opts.rescale_phi)
            if opts.dynamic_threshold is not None:
                x = dynamic_threshold_x(x, opts.dynamic_threshold)
            eps = eps_from_x(z, x, lam0)
        return EpsOut(eps, eps_c, eps_u)


LogProb = Callable[[Tensor, Tensor, Tensor], Tensor]


def classifier_log_prob(classifier: torch.nn.Module) -> LogProb:
    """log p_φ(c | z_λ, λ) from a noise-conditional classifier's logits, (B,)."""

    def log_prob(z: Tensor, logsnr: Tensor, c: Tensor) -> Tensor:
        logits = classifier(z, logsnr)
        return torch.log_softmax(logits.float(), dim=1).gather(1, c[:, None])[:, 0]

    return log_prob


def classifier_grad(log_prob: LogProb, z: Tensor, logsnr: Tensor, c: Tensor) -> Tensor:
    """∇_z log p_φ(c | z_λ), computed with autograd even inside a sampler's inference_mode."""
    with torch.inference_mode(False), torch.enable_grad():
        zg = z.detach().clone().requires_grad_(True)
        lp = log_prob(zg, logsnr.detach().clone(), c.detach().clone())
        (grad,) = torch.autograd.grad(lp.sum(), zg)
    return grad.detach()


def classifier_guided_denoiser(model: Model, log_prob: LogProb, c: Tensor, w: Tensor, null_label: int,
                               guide_uncond: bool = False, amp_dtype: str | None = None) -> Denoiser:
    """Classifier guidance: ε̃ = ε_θ(z, c) − w σ_λ ∇_z log p_φ(c | z_λ) (paper Eq. 4); guide_uncond uses ε_θ(z)."""
    assert c.dim() == 1 and w.shape == c.shape, (c.shape, w.shape)
    w_dev = w.to(c.device, torch.float32)
    c_model = torch.full_like(c, null_label) if guide_uncond else c

    def denoise(z: Tensor, logsnr: float) -> EpsOut:
        b = z.shape[0]
        lam = torch.full((b,), float(logsnr), device=z.device, dtype=torch.float32)
        # 1. The diffusion model's ε, then the classifier's gradient on the same z.
        eps_base = _run_model(model, z, lam, c_model, amp_dtype)
        grad = classifier_grad(log_prob, z, lam, c)
        sigma = float(alpha_sigma(torch.tensor(float(logsnr), dtype=torch.float64))[1])
        eps = eps_base - (w_dev * sigma).reshape(-1, *([1] * (z.dim() - 1))) * grad
        return EpsOut(eps, eps_base, None)

    return denoise


def implicit_classifier_grad(eps_cond: Tensor, eps_uncond: Tensor, logsnr: float) -> Tensor:
    """∇_z log p^i(c | z_λ) = −(ε(z, c) − ε(z)) / σ_λ (paper Sec. 3.2)."""
    _, sigma = alpha_sigma(torch.tensor(float(logsnr), dtype=torch.float64))
    return -(eps_cond - eps_uncond) / float(sigma)
