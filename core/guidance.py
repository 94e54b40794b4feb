"""Guidance as denoiser → denoiser transforms: classifier-free guidance (Ho & Salimans 2021, Eq. 6),
its variants (dynamic thresholding, CFG-rescale, guidance interval), classifier guidance (Dhariwal & Nichol 2021)
and the methods that came after CFG: APG (Sadat et al. 2025), CFG++ (Chung et al. 2024) and autoguidance
(Karras et al. 2024), each selected by GuidanceOptions.method and batched like CFG.

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
    """Guided ε̃, plus the two terms it was made from; eps_uncond is None when that half was skipped.

    eps_renoise: the ε that DDIM re-noises with when it is not ε̃ (CFG++: ε_θ(z)); None = ε̃.
    """

    eps: Tensor
    eps_cond: Tensor
    eps_uncond: Tensor | None
    eps_renoise: Tensor | None = None


Model = Callable[[Tensor, Tensor, Tensor], Tensor]


class Denoiser(Protocol):
    def __call__(self, z: Tensor, logsnr: float) -> EpsOut: ...


@dataclass(frozen=True)
class APGParams:
    """APG's hyper-parameters (Sadat, Hilliges & Weber, ICLR 2025), defaults as in the paper's reference code:

    eta (η): weight of the update's part parallel to x̂_c (0 = drop it, 1 = keep it as CFG does);
    norm_bound (r): the update's L2 norm over (C, H, W) is capped at r; None = no bound (default 2.5);
    momentum (β): Δ̄_t = Δ_t + β Δ̄_{t−1}, negative = "reverse momentum" (default −0.75);
    clip_x: form Δ from x̂_c and x̂_u clipped to the data range [−1, 1], as a bounded denoiser (EDM's D) gives. Off is
      the paper's rule on the raw x̂ = (z − σ ε) / α, which at our first step (λ = −20, α ≈ 5e−5) is ~10⁴ times the
      data range, so momentum carries that step's direction through the whole run (bench/results/apg_ablation_*.txt).
    """

    eta: float = 0.0
    norm_bound: float | None = 2.5
    momentum: float = -0.75
    clip_x: bool = False

    def describe(self, sep: str = " ") -> str:
        """The parameters as text, e.g. 'η=0 r=20 β=0' (r=0: no bound; 'clip' when clip_x)."""
        return sep.join([f"η={self.eta:g}", f"r={self.norm_bound or 0:g}", f"β={self.momentum:g}"] +
                        (["clip"] if self.clip_x else []))

    def __post_init__(self):
        if self.norm_bound is not None and not self.norm_bound > 0:
            raise ValueError(f"APG's norm bound r must be > 0 (or None for no bound), got {self.norm_bound}")
        if not (-1.0 < self.momentum <= 0.0):
            raise ValueError(f"APG's momentum β must be in (−1, 0], got {self.momentum}")


@dataclass(frozen=True)
class GuidanceOptions:
    """The guidance method and optional, composable variants of it.

    method: "cfg" (paper Eq. 6), "apg" (with `apg`), "cfgpp" (DDIM only; w is CFG++'s scale in [0, 1]) or
    "autoguidance" (the guide is a weaker conditional model, passed to CFGDenoiser as guide_model).

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
    method: str = "cfg"
    apg: APGParams = APGParams()

    @property
    def method_tag(self) -> str:
        """The method's short name, with APG's parameters where they are not the paper's defaults (sweep labels)."""
        a = self.apg
        if self.method != "apg" or a == APGParams():
            return self.method
        return f"apg({a.describe()})"

    @property
    def spec(self) -> "Method":
        """The method's record in METHOD_TABLE."""
        return method(self.method)

    @property
    def uncond_on_every_row(self) -> bool:
        """Whether every row needs ε_θ(z), guided or not (the implicit-classifier view; CFG++, which re-noises with it)."""
        return self.always_uncond or self.spec.uncond_every_row

    def record(self) -> dict:
        """The method and its parameters, as stored next to samples (npz) and in sweep rows (APG's are blank for others)."""
        if self.method != "apg":
            return {"method": self.method, "apg_eta": "", "apg_r": "", "apg_beta": "", "apg_clip_x": ""}
        return {"method": self.method, "apg_eta": self.apg.eta, "apg_r": self.apg.norm_bound or 0.0,
                "apg_beta": self.apg.momentum, "apg_clip_x": int(self.apg.clip_x)}

    def __post_init__(self):
        method(self.method)  # an unknown method is refused here, with the known ones named
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


def apg_update(x_cond: Tensor, x_uncond: Tensor, running: Tensor | None, p: APGParams) -> tuple[Tensor, Tensor]:
    """APG's guidance direction in x̂ space (Sadat et al. 2025, Alg. 1); returns (update, the new running Δ̄).

    The guided prediction is x̂_c + w · update; with η = 1, r = None and β = 0 the update is x̂_c − x̂_u, i.e. CFG.
    """
    assert x_cond.shape == x_uncond.shape and x_cond.dim() == 4, (x_cond.shape, x_uncond.shape)
    # 1. The CFG direction Δ = x̂_c − x̂_u, with (reverse) momentum Δ̄ = Δ + β Δ̄_prev.
    diff = x_cond - x_uncond
    if running is not None and p.momentum != 0.0:
        diff = diff + p.momentum * running
    running = diff
    # 2. Bound its norm: Δ̄ · min(1, r / ‖Δ̄‖), per sample over (C, H, W).
    if p.norm_bound is not None:
        norm = diff.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
        diff = diff * torch.clamp(p.norm_bound / norm.clamp(min=1e-12), max=1.0)
    # 3. Split along x̂_c (in float64): Δ∥ = ⟨Δ, u⟩ u with u = x̂_c / ‖x̂_c‖, Δ⊥ = Δ − Δ∥; down-weight Δ∥ by η.
    d64, u = diff.double(), torch.nn.functional.normalize(x_cond.double().flatten(1), dim=1).reshape(x_cond.shape)
    par = (d64 * u).sum(dim=(1, 2, 3), keepdim=True) * u
    update = (d64 - par) + p.eta * par
    return update.to(x_cond.dtype), running


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
        return _run_model(model, z, torch.full((b,), float(logsnr), device=z.device, dtype=z.dtype), plan.c, amp_dtype), None
    z_u = z if n_u == b else z.index_select(0, plan.rows_u)
    both = _run_model(model, torch.cat([z, z_u]), torch.full((b + n_u,), float(logsnr), device=z.device, dtype=z.dtype),
                      plan.c_both,
                      amp_dtype)
    eps_c = both[:b]
    return eps_c, (both[b:] if n_u == b else eps_c.index_copy(0, plan.rows_u, both[b:]))


def eps_guide_pair(model: Model, guide: Model, z: Tensor, logsnr: float, plan: RowPlan, need_u: bool,
                   amp_dtype: str | None = None) -> tuple[Tensor, Tensor | None]:
    """(ε_good(z, c), ε_bad(z, c) or None) for autoguidance: one pass of each network, the guide's over plan.rows_u;
    rows outside plan.rows_u get a copy of ε_good."""
    b, n_u = z.shape[0], plan.rows_u.numel()
    assert plan.c.shape == (b,), (plan.c.shape, z.shape)
    lam = torch.full((b,), float(logsnr), device=z.device, dtype=z.dtype)
    eps_c = _run_model(model, z, lam, plan.c, amp_dtype)
    if not need_u:
        return eps_c, None
    if n_u == b:
        return eps_c, _run_model(guide, z, lam, plan.c, amp_dtype)
    eps_g = _run_model(guide, z.index_select(0, plan.rows_u), lam[:n_u], plan.c.index_select(0, plan.rows_u), amp_dtype)
    return eps_c, eps_c.index_copy(0, plan.rows_u, eps_g)


class Combine(Protocol):
    """A method's rule: the guided ε̃ from ε_θ(z, c), the second pass (ε_θ(z), or the guide's ε) and the weights w (B,),
    with the method's own state for this sampling run (APG's running Δ̄)."""

    def __call__(self, z: Tensor, logsnr: Tensor, eps_c: Tensor, eps_u: Tensor, w: Tensor, opts: "GuidanceOptions",
                 state: dict) -> Tensor: ...


def combine_cfg(z: Tensor, logsnr: Tensor, eps_c: Tensor, eps_u: Tensor, w: Tensor, opts: "GuidanceOptions",
                state: dict) -> Tensor:
    """CFG (paper Eq. 6); CFG++ and autoguidance use it too, with w shifted and with the guide's ε."""
    return cfg_combine(eps_c, eps_u, w)


def combine_apg(z: Tensor, logsnr: Tensor, eps_c: Tensor, eps_u: Tensor, w: Tensor, opts: "GuidanceOptions",
                state: dict) -> Tensor:
    """APG (Sadat et al. 2025) in x̂ space: x̂ = x̂_c + w · update; unguided rows keep ε_θ(z, c) bitwise."""
    p = opts.apg
    x_c, x_u = x_from_eps(z, eps_c, logsnr), x_from_eps(z, eps_u, logsnr)
    # Δ's inputs: the raw x̂ (the paper's rule), or x̂ clipped to the data range (APGParams.clip_x)
    d_c, d_u = (x_c.clamp(-1.0, 1.0), x_u.clamp(-1.0, 1.0)) if p.clip_x else (x_c, x_u)
    update, state["running"] = apg_update(d_c, d_u, state.get("running"), p)
    x = x_c + w.reshape(-1, 1, 1, 1) * update
    return torch.where((w != 0).reshape(-1, 1, 1, 1), eps_from_x(z, x, logsnr), eps_c)


@dataclass(frozen=True)
class Method:
    """Everything about one guidance method, defined once: the app, the CLIs and the plots read it from METHOD_TABLE.

    weight: what its weight is called ("w", or CFG++'s "scale" λ ∈ [0, 1]); w_shift: Eq. 6 runs at w + w_shift (CFG++:
    λ − 1); uncond_every_row: every row needs ε_θ(z), guided or not (CFG++ re-noises DDIM with it); renoise_uncond:
    DDIM re-noises with ε_θ(z) instead of ε̃ (CFG++, so DDIM only); guide: the second pass is a weaker model's
    ε(z, c) (autoguidance) instead of ε_θ(z); plane: the live FID–IS plane's default weights.
    """

    key: str
    label: str
    colour: str
    reference: str
    combine: Combine
    plane: tuple[float, ...]
    weight: str = "w"
    w_range: tuple[float, float] | None = None
    w_shift: float = 0.0
    uncond_every_row: bool = False
    renoise_uncond: bool = False
    guide: bool = False

    def weight_text(self, w: float) -> str:
        """One weight as labels show it: 'w=3' or CFG++'s 'scale=0.6'."""
        return f"{self.weight}={w:g}"


METHOD_TABLE: tuple[Method, ...] = (
    Method("cfg", "CFG", "#1f77b4", "Ho & Salimans 2021", combine_cfg, (0.0, 0.5, 1.0, 3.0)),
    Method("apg", "APG", "#2ca02c", "Sadat, Hilliges & Weber 2025", combine_apg, (1.0, 3.0, 8.0)),
    Method("cfgpp", "CFG++", "#d62728", "Chung et al. 2024", combine_cfg, (0.2, 0.6, 1.0), weight="scale",
           w_range=(0.0, 1.0), w_shift=-1.0, uncond_every_row=True, renoise_uncond=True),
    Method("autoguidance", "autoguidance", "#9467bd", "Karras et al. 2024", combine_cfg, (0.5, 1.0, 2.0), guide=True),
)
METHODS = tuple(m.key for m in METHOD_TABLE)


def method(key: str) -> Method:
    """The table's record of a method key ("cfg", "apg", "cfgpp", "autoguidance")."""
    for m in METHOD_TABLE:
        if m.key == key:
            return m
    raise ValueError(f"unknown guidance method {key!r}; choose one of {', '.join(METHODS)}")


DYNAMIC_THRESHOLD_P = 0.995  # Imagen's default percentile of |x̂|
GUIDANCE_INTERVAL = (-4.0, 6.0)  # the λ range where guidance is applied, when the interval remedy is on
RESCALE_PHI = 0.7  # Lin et al.'s recommended φ

# The saturation remedies measured side by side (bench/colour.py, notebook 04), each alone.
REMEDIES: tuple[tuple[str, GuidanceOptions], ...] = (
    ("CFG", GuidanceOptions()),
    (f"dynamic thresholding p={DYNAMIC_THRESHOLD_P}", GuidanceOptions(dynamic_threshold=DYNAMIC_THRESHOLD_P)),
    (f"CFG-rescale φ={RESCALE_PHI}", GuidanceOptions(rescale_phi=RESCALE_PHI)),
    (f"guidance interval λ∈[{GUIDANCE_INTERVAL[0]:g}, {GUIDANCE_INTERVAL[1]:g}]", GuidanceOptions(interval=GUIDANCE_INTERVAL)),
)


class CFGDenoiser:
    """Classifier-free guidance as a denoiser transform (paper Alg. 2): one batched [cond; uncond] pass per step.

    c: labels (B,) in 0..K−1; w: guidance weights (B,), any real value (w = −1 is the unconditional model).
    Rows with w = 0 get no uncond pass (their eps_uncond is a copy of eps_cond); with no guided row at this λ
    the uncond half is skipped entirely and eps_uncond is None.
    first_step_tiles = n > 1 promises that the rows are n copies of the first B/n (label, seed) pairs and that the
    first call's z is n identical copies (a same-seed grid's shared initial noise): ε_θ then runs on one copy and is
    tiled, bitwise the same result for a batch-invariant model at 1/n of that step's network rows.
    opts.method picks the rule that combines the two passes: CFG, APG (x̂ space, with its running Δ̄ per row), CFG++
    (w = its scale in [0, 1]; every row needs ε_θ(z), which DDIM re-noises with) or autoguidance, whose second pass is
    guide_model(z, c), a weaker conditional model, instead of ε_θ(z).
    """

    def __init__(self, model: Model, c: Tensor, w: Tensor, null_label: int, opts: GuidanceOptions = GuidanceOptions(),
                 first_step_tiles: int = 1, guide_model: Model | None = None):
        assert c.dim() == 1 and w.shape == c.shape, (c.shape, w.shape)
        n = first_step_tiles
        assert n >= 1 and c.shape[0] % n == 0, (n, c.shape)
        w_host = w.detach().to("cpu", torch.float64)
        if not torch.isfinite(w_host).all():
            raise ValueError("guidance weights must be finite")
        spec = opts.spec
        if spec.w_range is not None and not ((w_host >= spec.w_range[0]) & (w_host <= spec.w_range[1])).all():
            raise ValueError(f"{spec.label}'s guidance {spec.weight} must be in [{spec.w_range[0]:g}, {spec.w_range[1]:g}]")
        if spec.guide != (guide_model is not None):
            raise ValueError("autoguidance needs a guide model (a weaker conditional model), and only it takes one")
        if n > 1:  # (a host copy of the labels: one sync on CUDA, before sampling, and only for a tiled grid)
            c_host = c.detach().cpu()
            assert torch.equal(c_host, c_host[: c.shape[0] // n].repeat(n)), "first_step_tiles needs labels tiled like the seeds"
        self.model, self.guide, self.opts, self.spec, self.tiles = model, guide_model, opts, spec, n
        self.w = (w + spec.w_shift if spec.w_shift else w).to(c.device, torch.float32)
        self.any_w = spec.w_shift != 0 or bool((w_host != 0).any())
        self.state: dict = {}  # the method's own state over this sampling run (APG's running Δ̄)
        # Rows with w = 0 need no ε_θ(z): the uncond half covers only the guided rows (host-side index, no syncs).
        rows_u = torch.arange(c.shape[0]) if opts.uncond_on_every_row else torch.nonzero(w_host != 0).flatten()
        self.plan = row_plan(c, rows_u, null_label)
        # The first step's plan: one copy of the rows, all of which get ε_θ(z); the mask keeps it for guided rows only.
        n_one = c.shape[0] // n
        self.first_plan = row_plan(c[:n_one], torch.arange(n_one), null_label)
        mask_u = torch.zeros(c.shape[0], dtype=torch.bool)
        mask_u[rows_u] = True
        self.first_mask_u = mask_u.to(c.device).reshape(-1, *([1] * 3))
        self.calls = 0

    @property
    def running(self) -> Tensor | None:
        """APG's running Δ̄ (None before the first guided step, and for other methods)."""
        return self.state.get("running")

    def _pair(self, z: Tensor, logsnr: float, plan: RowPlan, need_u: bool) -> tuple[Tensor, Tensor | None]:
        if self.guide is not None:
            return eps_guide_pair(self.model, self.guide, z, logsnr, plan, need_u, self.opts.amp_dtype)
        return eps_pair(self.model, z, logsnr, plan, need_u, self.opts.amp_dtype)

    def _passes(self, z: Tensor, logsnr: float, need_u: bool) -> tuple[Tensor, Tensor | None]:
        """The network passes of one step; at a tiled grid's first step, on one copy of the rows, then tiled."""
        if self.calls == 0 and self.tiles > 1:
            n_one = z.shape[0] // self.tiles
            eps_c, eps_u = self._pair(z[:n_one], logsnr, self.first_plan, need_u)
            eps_c = eps_c.repeat(self.tiles, 1, 1, 1)
            if eps_u is not None:
                eps_u = torch.where(self.first_mask_u, eps_u.repeat(self.tiles, 1, 1, 1), eps_c)
            return eps_c, eps_u
        return self._pair(z, logsnr, self.plan, need_u)

    def __call__(self, z: Tensor, logsnr: float) -> EpsOut:
        opts = self.opts
        assert z.shape[0] == self.plan.c.shape[0], (z.shape, self.plan.c.shape)
        guided = self.any_w and (opts.interval is None or opts.interval[0] <= logsnr <= opts.interval[1])
        lam0 = torch.tensor(float(logsnr), dtype=torch.float64)
        # 1. The networks: cond only, or cond and (guided rows') uncond (autoguidance: the guide model's) pass.
        eps_c, eps_u = self._passes(z, logsnr, guided or opts.always_uncond)
        self.calls += 1
        # 2. The method's rule (METHOD_TABLE), then the x̂-space remedies.
        eps = self.spec.combine(z, lam0, eps_c, eps_u, self.w, opts, self.state) if guided else eps_c
        eps = apply_remedies(z, lam0, eps, eps_c, opts, guided)
        return EpsOut(eps, eps_c, eps_u, eps_u if guided and self.spec.renoise_uncond else None)


def apply_remedies(z: Tensor, logsnr: Tensor, eps: Tensor, eps_c: Tensor, opts: GuidanceOptions, guided: bool) -> Tensor:
    """The x̂-space variants of a guided ε̃: CFG-rescale (guided steps only), then dynamic thresholding; back to ε."""
    rescale = guided and opts.rescale_phi > 0
    if not rescale and opts.dynamic_threshold is None:
        return eps
    x = x_from_eps(z, eps, logsnr)
    if rescale:
        x = rescale_x(x, x_from_eps(z, eps_c, logsnr), opts.rescale_phi)
    if opts.dynamic_threshold is not None:
        x = dynamic_threshold_x(x, opts.dynamic_threshold)
    return eps_from_x(z, x, logsnr)


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
        lam = torch.full((b,), float(logsnr), device=z.device, dtype=z.dtype)
        # 1. The diffusion model's ε, then the classifier's gradient on the same z.
        eps_base = _run_model(model, z, lam, c_model, amp_dtype)
        grad = classifier_grad(log_prob, z, lam, c)
        sigma = float(alpha_sigma(torch.tensor(float(logsnr), dtype=torch.float64))[1])
        eps = eps_base - (w_dev.to(z.dtype) * sigma).reshape(-1, *([1] * (z.dim() - 1))) * grad
        return EpsOut(eps, eps_base, None)

    return denoise


def implicit_classifier_grad(eps_cond: Tensor, eps_uncond: Tensor, logsnr: float) -> Tensor:
    """∇_z log p^i(c | z_λ) = −(ε(z, c) − ε(z)) / σ_λ (paper Sec. 3.2)."""
    _, sigma = alpha_sigma(torch.tensor(float(logsnr), dtype=torch.float64))
    return -(eps_cond - eps_uncond) / float(sigma)
