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


def cfg_denoiser(model: Model, c: Tensor, w: Tensor, null_label: int, opts: GuidanceOptions = GuidanceOptions(),
                 tiles: int = 1) -> Denoiser:
    """Classifier-free guidance as a denoiser transform (paper Alg. 2): one batched [cond; uncond] pass per step.

    c: labels (B,) in 0..K−1; w: guidance weights (B,), any real value (w = −1 is the unconditional model).
    Rows with w = 0 get no uncond pass (their eps_uncond is a copy of eps_cond); with no guided row at this λ
    the uncond half is skipped entirely and eps_uncond is None.
    tiles: the rows are `tiles` copies of the first B/tiles (label, seed) pairs, one copy per w, as in a same-seed
    grid. The first call's z then holds identical copies (the shared initial noise), so ε_θ runs on one copy and is
    tiled: bitwise the same result for a batch-invariant model, with 1/tiles of that step's network rows.
    """
    assert c.dim() == 1 and w.shape == c.shape, (c.shape, w.shape)
    assert tiles >= 1 and c.shape[0] % tiles == 0, (tiles, c.shape)
    w_host = w.detach().to("cpu", torch.float64)
    if not torch.isfinite(w_host).all():
        raise ValueError("guidance weights must be finite")
    dev = c.device
    b_all, n_one = c.shape[0], c.shape[0] // tiles
    # Rows with w = 0 need no ε_θ(z): the uncond half covers only the guided rows (host-side index, no syncs).
    rows_u = torch.arange(b_all) if opts.always_uncond else torch.nonzero(w_host != 0).flatten()
    any_w = bool((w_host != 0).any())
    w_dev = w.to(dev, torch.float32)
    # (labels, uncond row indices, labels of the [cond; uncond] batch) of all rows.
    full = (c, rows_u.to(dev), torch.cat([c, torch.full((rows_u.numel(),), null_label, dtype=c.dtype, device=dev)]))
    # A tiled grid's first call: the same triple for one copy, and which rows keep their uncond ε (None once used).
    first_call = None
    if tiles > 1:
        c_host = c.detach().cpu()
        assert torch.equal(c_host, c_host[:n_one].repeat(tiles)), "tiles > 1 needs labels tiled like the seeds"
        c_one = c[:n_one]
        mask_u = torch.zeros(b_all, dtype=torch.bool)
        mask_u[rows_u] = True
        one = (c_one, torch.arange(n_one, device=dev), torch.cat([c_one, torch.full((n_one,), null_label, dtype=c.dtype, device=dev)]))
        first_call = (one, mask_u.to(dev).reshape(-1, 1, 1, 1))

    def eps_pair(z: Tensor, logsnr: float, rows: tuple[Tensor, Tensor, Tensor], need_u: bool) -> tuple[Tensor, Tensor | None]:
        c_rows, rows_u_dev, c_both = rows
        b, n_u = z.shape[0], rows_u_dev.numel()
        if not need_u:
            return _run_model(model, z, torch.full((b,), float(logsnr), device=z.device), c_rows, opts.amp_dtype), None
        z_u = z if n_u == b else z.index_select(0, rows_u_dev)
        both = _run_model(model, torch.cat([z, z_u]), torch.full((b + n_u,), float(logsnr), device=z.device), c_both,
                          opts.amp_dtype)
        eps_c = both[:b]
        return eps_c, (both[b:] if n_u == b else eps_c.index_copy(0, rows_u_dev, both[b:]))

    def denoise(z: Tensor, logsnr: float) -> EpsOut:
        nonlocal first_call
        assert z.shape[0] == b_all, (z.shape, c.shape)
        in_interval = opts.interval is None or (opts.interval[0] <= logsnr <= opts.interval[1])
        guided = any_w and in_interval
        need_u = guided or opts.always_uncond
        # 1. The network: cond only, or cond and (guided rows') uncond concatenated in one forward pass; on the
        #    first call of a tiled grid, on one copy of the rows only.
        if first_call is not None:
            (one, mask_u_dev), first_call = first_call, None
            if z.device.type == "cpu":  # (a free check on the CPU; on CUDA it would cost a device sync)
                assert torch.equal(z, z[:n_one].repeat(tiles, 1, 1, 1)), "first call of a tiled grid needs tiled z"
            eps_c, eps_u = eps_pair(z[:n_one], logsnr, one, need_u)
            eps_c = eps_c.repeat(tiles, 1, 1, 1)
            if eps_u is not None:
                eps_u = torch.where(mask_u_dev, eps_u.repeat(tiles, 1, 1, 1), eps_c)
        else:
            eps_c, eps_u = eps_pair(z, logsnr, full, need_u)
        eps = cfg_combine(eps_c, eps_u, w_dev) if guided else eps_c
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

    return denoise


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
