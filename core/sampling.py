"""Samplers as plain functions over a denoiser (k-diffusion style), in the paper's log-SNR notation.

sample_ancestral: the paper's sampler (Ho & Salimans 2021, Alg. 2), variance (σ̃²)^{1−v} (σ²_{λ|λ'})^v.
sample_ddim: deterministic DDIM (Song et al. 2021), the probability-flow discretisation; with a denoiser that sets
    eps_renoise, the CFG++ update (Chung et al. 2024, Alg. 1).
generate: a same-seed (n_w × n_seeds) grid in one batched run per step; generate_grids: several grids in one run.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable

import torch
from torch import Tensor

from core.diffusion import LOGSNR_MAX, LOGSNR_MIN, diffuse, eps_from_x, logsnr_schedule_cosine, posterior, x_from_eps
from core.guidance import METHOD_TABLE, CFGDenoiser, Denoiser, GuidanceOptions, LogProb, classifier_guided_denoiser
from core.noise import NoiseConfig, SeededNoise

MAX_STEPS = 256  # the paper's T; the app, the CLIs and sweeps share this limit
SAMPLERS = ("ddim", "ancestral")
DEFAULT_V = 0.3  # the ancestral sampler's variance interpolation v, used throughout the app, the CLIs and the sweeps

Callback = Callable[[int, Tensor, Tensor, Tensor, "Tensor | None"], None]


@lru_cache(maxsize=64)
def sampling_logsnrs(steps: int, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> tuple[float, ...]:
    """λ_0 = λ_min < … < λ_T = λ_max on the cosine schedule at u = 1, 1 − 1/T, …, 0 (cached, host floats)."""
    if not (isinstance(steps, int) and 1 <= steps <= MAX_STEPS):
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return tuple(float(v) for v in logsnr_schedule_cosine(u, logsnr_min, logsnr_max))


def sample_ancestral(denoiser: Denoiser, z: Tensor, steps: int, noise: SeededNoise, v: float = DEFAULT_V,
                     clip_x: bool = True, callback: Callback | None = None,
                     logsnr_range: tuple[float, float] = (LOGSNR_MIN, LOGSNR_MAX)) -> Tensor:
    """Paper Alg. 2: z_{λ'} ~ N(μ̃(z, x̂), (σ̃²_{λ'|λ})^{1−v} (σ²_{λ|λ'})^v); returns the final x̂ (B, C, H, W)."""
    assert z.dim() == 4 and len(noise) == z.shape[0], (z.shape, len(noise))
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"v must be in [0, 1], got {v}")
    lams = sampling_logsnrs(steps, *logsnr_range)
    with torch.inference_mode():
        for i in range(steps):
            lam, lam_next = lams[i], lams[i + 1]
            # 1. Guided ε̃ at λ_i, and x̂ = (z − σ ε̃) / α.
            out = denoiser(z, lam)
            if out.eps_renoise is not None:
                m = next(m for m in METHOD_TABLE if m.renoise_uncond)
                raise ValueError(f"{m.label} is defined for DDIM only ({m.reference}): choose the ddim sampler")
            lam_t = torch.tensor(lam, dtype=torch.float64)
            x_raw = x_from_eps(z, out.eps, lam_t)
            x = x_raw.clamp(-1.0, 1.0) if clip_x else x_raw
            if callback is not None:
                callback(i, z, x_raw, out.eps_cond, out.eps_uncond)
            if i == steps - 1:
                return x
            # 2. Posterior q(z_{λ'} | z_λ, x̂) with the paper's v-interpolated variance, and fresh seeded noise.
            mean, var_tilde, var_fwd = posterior(z, x, lam_t, torch.tensor(lam_next, dtype=torch.float64))
            std = float((var_tilde ** (1.0 - v) * var_fwd ** v).sqrt())
            z = mean + std * noise.step().to(z.dtype)
    raise AssertionError("unreachable")


def sample_ddim(denoiser: Denoiser, z: Tensor, steps: int, noise: SeededNoise | None = None,
                clip_x: bool = True, callback: Callback | None = None,
                logsnr_range: tuple[float, float] = (LOGSNR_MIN, LOGSNR_MAX)) -> Tensor:
    """Deterministic DDIM: z_{λ'} = α_{λ'} x̂ + σ_{λ'} ε̂ (Song et al. 2021, η = 0); returns the final x̂."""
    assert z.dim() == 4, z.shape
    lams = sampling_logsnrs(steps, *logsnr_range)
    with torch.inference_mode():
        for i in range(steps):
            lam, lam_next = lams[i], lams[i + 1]
            # 1. Guided ε̃ and x̂; after clipping, ε̂ is recomputed so the step stays on the same line.
            out = denoiser(z, lam)
            lam_t = torch.tensor(lam, dtype=torch.float64)
            x_raw = x_from_eps(z, out.eps, lam_t)
            if callback is not None:
                callback(i, z, x_raw, out.eps_cond, out.eps_uncond)
            x = x_raw.clamp(-1.0, 1.0) if clip_x else x_raw
            if i == steps - 1:
                return x
            eps = eps_from_x(z, x, lam_t) if clip_x else out.eps
            if out.eps_renoise is not None:  # CFG++: re-noise with ε_θ(z), carrying over clipping's correction to ε̃
                eps = eps + (out.eps_renoise - out.eps) if clip_x else out.eps_renoise
            # 2. Jump to λ_{i+1} along the predicted (x̂, ε̂).
            z = diffuse(x, torch.tensor(lam_next, dtype=torch.float64), eps)
    raise AssertionError("unreachable")


def run_sampler(name: str, denoiser: Denoiser, noise: SeededNoise, steps: int, v: float = DEFAULT_V,
                clip_x: bool = True, callback: Callback | None = None,
                logsnr_range: tuple[float, float] = (LOGSNR_MIN, LOGSNR_MAX)) -> Tensor:
    """Dispatch on the sampler's name, starting from the seeded initial noise."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    z = noise.initial()
    if name == "ddim":
        return sample_ddim(denoiser, z, steps, noise, clip_x, callback, logsnr_range)
    return sample_ancestral(denoiser, z, steps, noise, v, clip_x, callback, logsnr_range)


def _grid_inputs(model, seeds: list[int], labels: list[int], ws: list[float],
                 noise_cfg: NoiseConfig) -> tuple[SeededNoise, Tensor, Tensor]:
    """Noise, labels and per-row w of an (n_w × n_seeds) grid: row j repeats the seeds' streams at w = ws[j]."""
    assert len(seeds) == len(labels) and len(seeds) > 0 and len(ws) > 0, (len(seeds), len(labels), len(ws))
    cfg = model.cfg
    p = next(model.parameters())  # the noise comes in the model's device and dtype (the exact lab samples in float64)
    noise = SeededNoise(list(seeds), (cfg.in_channels, cfg.image_size, cfg.image_size), noise_cfg, p.device,
                        dtype=p.dtype).repeat(len(ws))
    c = torch.tensor(list(labels) * len(ws), dtype=torch.long, device=p.device)
    w = torch.tensor(ws, dtype=torch.float32).repeat_interleave(len(seeds))
    return noise, c, w


@dataclass(frozen=True)
class SamplerConfig:
    """How a grid is sampled: the sampler, its steps T, the ancestral sampler's v, whether x̂ is clipped to [−1, 1] at
    every step, and the guidance options (method, remedies)."""

    sampler: str = "ddim"
    steps: int = 10
    v: float = DEFAULT_V
    clip_x: bool = True
    opts: GuidanceOptions = GuidanceOptions()

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")

    @property
    def nfe(self) -> int:
        """Network evaluations per sample when some row is guided (w ≠ 0): two per step."""
        return 2 * self.steps


def generate(model, seeds: list[int], labels: list[int], ws: list[float], sampling: SamplerConfig,
             noise_cfg: NoiseConfig = NoiseConfig(), callback: Callback | None = None, guide_model=None) -> Tensor:
    """A same-seed grid: images (n_w, n_seeds, C, H, W) in [−1, 1]; row j uses w = ws[j] on every seed.

    Sample (j, i) depends only on seeds[i], labels[i] and ws[j]: all rows share the seeds' noise streams.
    sampling.opts.method picks the guidance rule; autoguidance takes its weaker model as guide_model.
    """
    noise, c, w = _grid_inputs(model, seeds, labels, ws, noise_cfg)
    # Every w row starts from the same seeds' initial noise (SeededNoise draws it once and tiles it), so the first
    # step's network pass runs on one copy of the rows and is tiled: bitwise the same, 1/n_w of that step's rows.
    assert noise.tiles == len(ws) and len(noise) == c.shape[0], (noise.tiles, len(ws))
    den = CFGDenoiser(model, c, w, model.cfg.null_label, sampling.opts, first_step_tiles=noise.tiles,
                      guide_model=guide_model)
    x = run_sampler(sampling.sampler, den, noise, sampling.steps, sampling.v, sampling.clip_x, callback,
                    model.cfg.logsnr_range)
    return x.reshape(len(ws), len(seeds), *x.shape[1:])


def generate_grids(model, grids: list[tuple[list[int], list[int], list[float]]], sampling: SamplerConfig,
                   noise_cfg: NoiseConfig = NoiseConfig(), guide_model=None) -> list[Tensor]:
    """Several same-seed grids (seeds, labels, ws) in one batched run, as a server coalesces requests; grid k comes back
    as generate would return it alone, (n_w, n_seeds, C, H, W), bitwise (per-seed noise, a batch-invariant network)."""
    assert len(grids) > 0, "no grids"
    if len(grids) == 1:  # one grid alone keeps generate's tiled first step
        return [generate(model, *grids[0], sampling, noise_cfg, guide_model=guide_model)]
    seeds, labels, ws = [], [], []
    for g_seeds, g_labels, g_ws in grids:  # 1. every grid's rows, w-major as generate lays them out
        assert len(g_seeds) == len(g_labels) and len(g_seeds) > 0 and len(g_ws) > 0, (len(g_seeds), len(g_ws))
        for w in g_ws:
            seeds += g_seeds
            labels += g_labels
            ws += [float(w)] * len(g_seeds)
    p = next(model.parameters())
    cfg = model.cfg
    noise = SeededNoise(seeds, (cfg.in_channels, cfg.image_size, cfg.image_size), noise_cfg, p.device, dtype=p.dtype)
    c = torch.tensor(labels, dtype=torch.long, device=p.device)
    # 2. One sampler run over all rows (no first-step tiling: the rows are not copies of one seed set).
    den = CFGDenoiser(model, c, torch.tensor(ws, dtype=torch.float32), cfg.null_label, sampling.opts,
                      guide_model=guide_model)
    x = run_sampler(sampling.sampler, den, noise, sampling.steps, sampling.v, sampling.clip_x, None, cfg.logsnr_range)
    # 3. Split back into the grids.
    out, start = [], 0
    for g_seeds, _, g_ws in grids:
        n = len(g_seeds) * len(g_ws)
        out.append(x[start:start + n].reshape(len(g_ws), len(g_seeds), *x.shape[1:]))
        start += n
    return out


def generate_classifier_guided(model, log_prob: LogProb, seeds: list[int], labels: list[int], ws: list[float],
                               sampling: SamplerConfig, noise_cfg: NoiseConfig = NoiseConfig(),
                               guide_uncond: bool = False) -> Tensor:
    """Classifier guidance (paper Eq. 4) on a same-seed grid: images (n_w, n_seeds, C, H, W); guide_uncond guides ε(z)."""
    noise, c, w = _grid_inputs(model, seeds, labels, ws, noise_cfg)
    den = classifier_guided_denoiser(model, log_prob, c, w, model.cfg.null_label, guide_uncond=guide_uncond)
    x = run_sampler(sampling.sampler, den, noise, sampling.steps, sampling.v, sampling.clip_x,
                    logsnr_range=model.cfg.logsnr_range)
    return x.reshape(len(ws), len(seeds), *x.shape[1:])


def generate_with_raw_x(model, seeds: list[int], labels: list[int], ws: list[float], sampling: SamplerConfig,
                        noise_cfg: NoiseConfig = NoiseConfig()) -> tuple[Tensor, Tensor]:
    """(images, the last step's x̂ before clipping), both (n_w, n_seeds, C, H, W): the saturation view of `generate`.

    Sampling clips x̂ at every step as usual (an ε-model needs it at low λ); the raw last-step x̂ shows how far the
    guided prediction overshoots [−1, 1], which clipping turns into saturated pixels.
    """
    raw: list[Tensor] = []

    def keep_last(i, z, x_raw, eps_cond, eps_uncond):
        if i == sampling.steps - 1:
            raw.append(x_raw.detach().clone())

    x = generate(model, seeds, labels, ws, replace(sampling, clip_x=True), noise_cfg, callback=keep_last)
    return x, raw[0].reshape(x.shape)
