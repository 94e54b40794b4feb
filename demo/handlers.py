"""Plain handler functions behind every tab: validated inputs in, PIL images / plotly figures / text out.

They are testable without a browser; ui.py only wires them to components.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import gradio as gr
import numpy as np
import torch
from PIL import Image

from core.data import to_uint8
from core.diffusion import alpha_sigma
from core.guidance import GuidanceOptions, classifier_log_prob
from core.images import grid_image
from core.metrics import classifier_features
from core.noise import NoiseConfig
from core.pipeline import Pipeline, load_pipeline
from core.sampling import generate, generate_classifier_guided, generate_with_raw_x, sampling_logsnrs
from core.sweep import SweepPoint, SweepUpdate, sweep_stream, write_csv
from demo import plots
from demo.validate import (check_class, check_curve_n, check_grid_size, check_int, check_n_seeds, check_sampler,
                           check_seed, check_steps, check_threshold, check_unit, check_v, check_w, parse_w_list, MAX_CURVE_POINTS)

DEFAULT_STEPS = 10
ROW_SEEDS = 8
SCRUB_WS = [-1.0, -0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0,
            3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0]

_PIPE: Pipeline | None = None
_PIPE_LOCK = threading.Lock()
_MODEL_LOCK = threading.Lock()  # one sampling job at a time on the model: 2 CPU cores gain nothing from more


_WARM = {"state": "not started"}
_WARM_DONE = threading.Event()


def start_compile_warmup() -> None:
    """torch.compile the model in the background (CFG_COMPILE=0 disables); eager serves until it is ready."""
    if os.environ.get("CFG_COMPILE", "1") == "0":
        _WARM["state"] = "eager (CFG_COMPILE=0)"
        _WARM_DONE.set()
        return
    if _WARM["state"] != "not started":
        return
    _WARM["state"] = "compiling"

    def work():
        try:
            _WARM["state"] = pipe().model.enable_compile(swap_lock=_MODEL_LOCK)
        finally:
            _WARM_DONE.set()

    threading.Thread(target=work, name="compile-warmup", daemon=True).start()


def wait_warm(timeout: float = 120.0) -> str:
    """Block until the compile warm-up has finished (or was disabled); returns its state."""
    _WARM_DONE.wait(timeout)
    return _WARM["state"]


def pipe() -> Pipeline:
    """The shared, lazily loaded pipeline (sha256-checked weights)."""
    global _PIPE
    with _PIPE_LOCK:
        if _PIPE is None:
            _PIPE = load_pipeline()
        return _PIPE


def class_labels(mode: str, cls, seeds: list[int]) -> list[int]:
    """'single class' → cls for every seed; 'random classes' → a class drawn from each seed alone."""
    if mode == "random classes":
        return [int(np.random.default_rng(s).integers(10)) for s in seeds]
    if mode != "single class":
        raise gr.Error(f"unknown mode {mode!r}: choose 'single class' or 'random classes'")
    return [check_class(cls)] * len(seeds)


def _u8(x: torch.Tensor) -> np.ndarray:
    """(R, C, 1, H, W) in [−1, 1] → uint8 (R, C, H, W)."""
    r, c = x.shape[:2]
    return to_uint8(x.reshape(r * c, *x.shape[2:])).reshape(r, c, *x.shape[-2:])


def _nfe(ws: list[float], steps: int) -> int:
    return steps * (2 if any(w != 0 for w in ws) else 1)


def _sample(seeds, labels, ws, steps, sampler, v=0.3, noise=NoiseConfig(), opts=GuidanceOptions(),
            callback=None) -> torch.Tensor:
    p = pipe()
    with _MODEL_LOCK:
        return generate(p.model, seeds, labels, ws, steps, sampler, v, noise, opts, callback=callback)


def _info(what: str, n_samples: int, nfe: int, seconds: float) -> str:
    return f"{what} · {n_samples} samples · NFE {nfe} per sample · {seconds:.2f} s wall"


def _w_label(w: float) -> str:
    return f"w={w:g} (s={1 + w:g})"


# ---------------------------------------------------------------- tab 1: guidance sweep (paper Fig. 3)

def guidance_grid(mode: str, cls, w_list, n_seeds, seed_start, sampler: str, v, steps) -> tuple[Image.Image, str]:
    """Rows = seeds, columns = w values, the exact same noise per row (paper Fig. 3)."""
    ws = parse_w_list(w_list)
    n = check_n_seeds(n_seeds)
    s0 = check_seed(seed_start)
    sampler, v, steps = check_sampler(sampler), check_v(v), check_steps(steps)
    check_grid_size(len(ws), n)
    seeds = list(range(s0, s0 + n))
    labels = class_labels(mode, cls, seeds)
    t = time.perf_counter()
    x = _sample(seeds, labels, ws, steps, sampler, v)
    dt = time.perf_counter() - t
    imgs = _u8(x).transpose(1, 0, 2, 3)  # (seeds, ws, H, W)
    img = grid_image(imgs, 3, [f"seed {s}: {c}" for s, c in zip(seeds, labels)], [_w_label(w) for w in ws])
    return img, _info(f"{sampler}, T={steps}", len(ws) * n, _nfe(ws, steps), dt)


def slider_row(w, cls, seed_start, sampler: str, steps) -> tuple[Image.Image, str]:
    """One row of 8 same-seed samples at a single w (the slider's release)."""
    w = check_w(w)
    c = check_class(cls)
    s0 = check_seed(seed_start)
    sampler, steps = check_sampler(sampler), check_steps(steps)
    seeds = list(range(s0, s0 + ROW_SEEDS))
    t = time.perf_counter()
    x = _sample(seeds, [c] * ROW_SEEDS, [w], steps, sampler)
    dt = time.perf_counter() - t
    img = grid_image(_u8(x), 3)
    return img, _info(f"w = {w:g}, s = 1+w = {1 + w:g}, {sampler} T={steps}", ROW_SEEDS, _nfe([w], steps), dt)


def s_of_w(w) -> str:
    """The diffusers-style scale next to the paper's w."""
    w = check_w(w)
    return f"w = {w:g}, s = 1 + w = {1 + w:g}"


def scrub_strip(cls, seed_start, sampler: str, steps, progress=gr.Progress()) -> tuple[str, str]:
    """A dense same-seed strip over SCRUB_WS, as one sprite sheet the browser scrubs through with no round trip."""
    c = check_class(cls)
    s0 = check_seed(seed_start)
    sampler, steps = check_sampler(sampler), check_steps(steps)
    seeds = list(range(s0, s0 + ROW_SEEDS))
    progress(0, desc=f"sampling {len(SCRUB_WS)} w values × {ROW_SEEDS} seeds in one batched run")
    t = time.perf_counter()
    lams = sampling_logsnrs(steps)

    def cb(i, *_):
        progress((i + 1) / steps, desc=f"step {i + 1}/{steps} (λ = {lams[i]:.2f})")

    x = _sample(seeds, [c] * ROW_SEEDS, SCRUB_WS, steps, sampler, callback=cb)
    dt = time.perf_counter() - t
    frames = _u8(x)  # (n_w, 8, H, W): frame j is the row at SCRUB_WS[j]
    sheet = grid_image(frames, 3, pad=2)
    html = plots.sprite_html(sheet, len(SCRUB_WS), SCRUB_WS)
    return html, _info(f"scrub strip ready: drag the slider ({sampler} T={steps})", len(SCRUB_WS) * ROW_SEEDS, _nfe(SCRUB_WS, steps), dt)


# ---------------------------------------------------------------- tab 2: inside one step (implicit classifier)

@lru_cache(maxsize=8)
def _trajectory(c: int, seed: int, w: float, steps: int, sampler: str) -> dict:
    traj = {"z": [], "x": [], "eps_c": [], "eps_u": [], "lam": list(sampling_logsnrs(steps)[:steps])}

    def cb(i, z, x_raw, eps_c, eps_u):
        traj["z"].append(z[0, 0].float().numpy().copy())
        traj["x"].append(x_raw[0, 0].float().numpy().copy())
        traj["eps_c"].append(eps_c[0, 0].float().numpy().copy())
        traj["eps_u"].append(eps_u[0, 0].float().numpy().copy())

    _sample([seed], [c], [w], steps, sampler, opts=GuidanceOptions(always_uncond=True), callback=cb)
    return traj


def inside_step(cls, seed, w, steps, sampler: str, step) -> tuple[Image.Image, object, str]:
    """z_λ, x̂, ε(z,c), ε(z), their difference and ε̃ at one step of the real trajectory, plus the extrapolation plot."""
    c, seed, w = check_class(cls), check_seed(seed), check_w(w)
    steps, sampler = check_steps(steps), check_sampler(sampler)
    i = check_int(step, "step", 0, steps - 1)
    tr = _trajectory(c, seed, w, steps, sampler)
    lam = tr["lam"][i]
    sigma = float(alpha_sigma(torch.tensor(lam, dtype=torch.float64))[1])
    e_c, e_u = tr["eps_c"][i], tr["eps_u"][i]
    diff = e_c - e_u  # = −σ ∇ log p^i(c|z)
    e_t = (1 + w) * e_c - w * e_u
    # PIL's built-in font is ASCII-only: panel labels spell the symbols out (the UI caption uses the real ones).
    panels = [("z_lambda", tr["z"][i], "sym"), ("x_hat", np.clip(tr["x"][i], -1, 1), "x"), ("eps(z,c)", e_c, "sym"),
              ("eps(z)", e_u, "sym"), ("eps(z,c)-eps(z)", diff, "diff"), ("eps~ guided", e_t, "sym")]
    img = plots.panel_row(panels)
    fig = plots.extrapolation_figure(e_u, e_c, w)
    norm = float(np.linalg.norm(diff)) / sigma
    info = (f"step {i + 1}/{steps}: λ = {lam:.2f}, σ_λ = {sigma:.3f}; ‖∇_z log p^i(c|z)‖ = ‖ε(z,c) − ε(z)‖/σ = {norm:.2f}; "
            f"ε̃ = (1+w)·ε(z,c) − w·ε(z) with w = {w:g} (s = {1 + w:g})")
    return img, fig, info


def step_range(steps) -> dict:
    """The step slider follows T: steps 0 … T − 1."""
    return gr.update(maximum=check_steps(steps) - 1)


def trajectory_animation(cls, seed, w_list, steps, sampler: str) -> tuple[str, str]:
    """An animated WebP of x̂ along the denoising trajectory for up to 4 w values side by side."""
    c, seed = check_class(cls), check_seed(seed)
    ws = parse_w_list(w_list, max_values=4)
    steps, sampler = check_steps(steps), check_sampler(sampler)
    frames: list[np.ndarray] = []

    def cb(i, z, x_raw, eps_c, eps_u):
        frames.append(to_uint8(x_raw.clamp(-1, 1)))

    t = time.perf_counter()
    x = _sample([seed] * 1, [c], ws, steps, sampler, callback=cb)
    frames.append(_u8(x)[:, 0])
    dt = time.perf_counter() - t
    pil = [grid_image(f[None], 4, col_labels=[_w_label(w) for w in ws]) for f in frames]
    out = Path(tempfile.mkdtemp(prefix="cfg_anim_")) / "trajectory.webp"
    pil[0].save(out, format="WEBP", save_all=True, append_images=pil[1:] + [pil[-1]] * 6, duration=120, loop=0, lossless=True)
    return str(out), _info(f"trajectory of x̂ over {steps} steps", len(ws), _nfe(ws, steps), dt)


# ---------------------------------------------------------------- tab 3: truncation vs guidance

ACTIVE_CURVES = {"n": 0}  # running live-curve generators (observable by tests and load checks)
_CURVES_LOCK = threading.Lock()


def _locked_sweep(points: list[SweepPoint], n: int, steps: int, sampler: str, first_batch: int) -> Iterator[SweepUpdate]:
    """sweep_stream with the model lock held while sampling a batch only, so other users' requests interleave.

    Batches are sized to ≈ 4 s of sampling, so Stop or a closed page (which closes this generator) frees the worker
    quickly. Metrics are lazy: the consumer's rows() computes them after the lock is released. (Computing them in a
    thread beside the sampler was tried: numpy's and torch's threads then fight over the 2 cores, 1.2× slower.)
    """
    p = pipe()
    stream = sweep_stream(p.model, p.classifier, points, n, steps, sampler, batch=100, first_batch=first_batch,
                          kid_subsets=10, kid_subset_size=200, target_batch_seconds=4.0, lazy_metrics=True)
    with _CURVES_LOCK:
        ACTIVE_CURVES["n"] += 1
    try:
        while True:
            with _MODEL_LOCK:
                upd = next(stream, None)
            if upd is None:
                return
            yield upd
    finally:  # the consumer went away (Stop, closed page) or the sweep ended
        stream.close()
        with _CURVES_LOCK:
            ACTIVE_CURVES["n"] -= 1


TRUNCATIONS = [2.0, 1.0, 0.5, 0.04]


def truncation_compare(cls, seed_start, n_seeds, thresholds_text, temperature, w_list, steps, sampler: str) -> tuple[Image.Image, str]:
    """BigGAN truncation of the initial noise and a lower noise temperature, next to CFG, on the same seeds."""
    c, s0, n = check_class(cls), check_seed(seed_start), check_n_seeds(n_seeds)
    items = [t for t in str(thresholds_text).replace(" ", ",").split(",") if t.strip()]
    if not items:
        raise gr.Error("give at least one truncation threshold, e.g. 2, 1, 0.5, 0.04")
    thr = [check_threshold(t) for t in items[:6]]
    temp = check_unit(temperature, "noise temperature") if temperature is not None else 1.0
    ws = parse_w_list(w_list, max_values=6)
    steps, sampler = check_steps(steps), check_sampler(sampler)
    check_grid_size(len(thr) + 1 + len(ws), n)
    seeds = list(range(s0, s0 + n))
    labels = [c] * n
    t = time.perf_counter()
    rows, names = [], []
    for th in thr:
        rows.append(_sample(seeds, labels, [0.0], steps, sampler, noise=NoiseConfig(truncation=th))[0])
        names.append(f"truncate |z|<={th:g}")
    rows.append(_sample(seeds, labels, [0.0], steps, sampler, noise=NoiseConfig(temperature=temp, step_temperature=temp))[0])
    names.append(f"temperature {temp:g}")
    rows.extend(_sample(seeds, labels, ws, steps, sampler))
    names += [f"CFG {_w_label(w)}" for w in ws]
    dt = time.perf_counter() - t
    img = grid_image(_u8(torch.stack(rows)), 3, names)
    return img, _info("truncation / temperature (w = 0) vs CFG, same seeds", len(rows) * n, steps * 2, dt)


def live_tradeoff(n, steps, sampler: str, progress=gr.Progress()):
    """Recompute the FID-vs-IS curves of CFG and of the truncation / temperature baselines live, streaming."""
    n, steps, sampler = check_curve_n(n), check_steps(steps), check_sampler(sampler)
    points = [SweepPoint(w) for w in (0.0, 0.5, 1.0, 3.0)]
    points += [SweepPoint(0.0, NoiseConfig(truncation=t)) for t in TRUNCATIONS]
    points.append(SweepPoint(0.0, NoiseConfig(temperature=0.6, step_temperature=0.6)))
    updates = _locked_sweep(points, n, steps, sampler, first_batch=4)
    try:
        for upd in updates:
            progress(upd.done / upd.total, desc=f"N = {upd.done}/{upd.total} per point")
            rows = [dict(r, truncation=r["truncation"] or None) for r in upd.rows(steps, sampler)]
            yield plots.tradeoff_figure(rows, title=f"live, N = {upd.done} per point ({sampler}, T={steps})"), \
                f"N = {upd.done} of {upd.total} per point · {len(points)} points · {upd.elapsed:.1f} s"
    finally:
        updates.close()


def precomputed_tradeoff() -> object:
    """FID-vs-IS of the shipped big sweep: CFG points, truncation and temperature baselines."""
    return plots.tradeoff_figure(plots.read_big_sweep())


# ---------------------------------------------------------------- tab 4: classifier guidance vs CFG

def classifier_vs_cfg(cls, seed_start, n_seeds, scales_text, steps, sampler: str) -> tuple[Image.Image, object, str]:
    """Noisy-classifier guidance at several scales (on ε(z,c) and on ε(z)) next to CFG; confidence of both classifiers."""
    c, s0, n = check_class(cls), check_seed(seed_start), check_n_seeds(n_seeds)
    scales = parse_w_list(scales_text, max_values=5)
    steps, sampler = check_steps(steps), check_sampler(sampler)
    check_grid_size(3 * len(scales), n)
    p = pipe()
    seeds = list(range(s0, s0 + n))
    lp = classifier_log_prob(p.noisy_classifier)
    rows, names = [], []
    t = time.perf_counter()
    with _MODEL_LOCK:
        for guide_uncond in (False, True):
            rows.extend(generate_classifier_guided(p.model, lp, seeds, [c] * n, scales, steps, sampler,
                                                   guide_uncond=guide_uncond))
            names += [f"CG on {'eps(z)' if guide_uncond else 'eps(z,c)'} w={s:g}" for s in scales]
        xs = generate(p.model, seeds, [c] * n, scales, steps, sampler)
    rows.extend(xs)
    names += [f"CFG {_w_label(s)}" for s in scales]
    dt = time.perf_counter() - t
    x_all = torch.stack(rows)  # (R, n, 1, 28, 28)
    flat = x_all.reshape(-1, *x_all.shape[2:])
    lam_clean = torch.full((flat.shape[0],), 8.0, device=flat.device)
    with torch.inference_mode():
        p_guide = torch.softmax(p.noisy_classifier(flat.to(p.device), lam_clean), 1)[:, c].reshape(len(rows), n).mean(1)
    _, probs = classifier_features(p.classifier, flat)
    p_metric = torch.from_numpy(probs[:, c]).reshape(len(rows), n).mean(1)
    fig = plots.confidence_figure(names, p_guide.cpu().numpy(), p_metric.numpy())
    img = grid_image(_u8(x_all), 3, names)
    return img, fig, _info("classifier guidance vs CFG", len(rows) * n, steps * 2, dt)


# ---------------------------------------------------------------- tab 5: saturation lab

def saturation_lab(cls, seed_start, n_seeds, w_list, dyn_threshold: bool, rescale_phi, use_interval: bool,
                   steps, sampler: str) -> tuple[Image.Image, object, object, str]:
    """Per w: samples without and with the chosen remedies, the histogram of x̂ before clipping, the saturated fraction."""
    c, s0, n = check_class(cls), check_seed(seed_start), check_n_seeds(n_seeds)
    ws = parse_w_list(w_list, max_values=8)
    phi = check_unit(rescale_phi, "CFG-rescale φ")
    steps, sampler = check_steps(steps), check_sampler(sampler)
    check_grid_size(2 * len(ws), n)
    opts = GuidanceOptions(dynamic_threshold=0.995 if dyn_threshold else None, rescale_phi=phi,
                           interval=(-4.0, 6.0) if use_interval else None)
    remedy = any([dyn_threshold, phi > 0, use_interval])
    seeds = list(range(s0, s0 + n))
    t = time.perf_counter()
    p = pipe()
    with _MODEL_LOCK:
        img_raw, raw = generate_with_raw_x(p.model, seeds, [c] * n, ws, steps, sampler)
        img_fix, fixed = generate_with_raw_x(p.model, seeds, [c] * n, ws, steps, sampler, opts=opts) if remedy else (img_raw, raw)
    dt = time.perf_counter() - t
    names = [_w_label(w) for w in ws]
    rows = [img_raw[j] for j in range(len(ws))]
    labels = list(names)
    if remedy:
        tag = "+".join(k for k, on in [("dyn-thr", dyn_threshold), (f"rescale phi={phi:g}", phi > 0), ("interval", use_interval)] if on)
        rows = [r for j in range(len(ws)) for r in (img_raw[j], img_fix[j])]
        labels = [l for name in names for l in (name, f"{name} + {tag}")]
    img = grid_image(_u8(torch.stack(rows)), 3, labels)
    sat_raw = (raw.abs() > 1.0).float().mean(dim=(1, 2, 3, 4)).numpy()
    sat_fix = (fixed.abs() > 1.0).float().mean(dim=(1, 2, 3, 4)).numpy()
    hist = plots.histogram_figure(ws, raw.numpy(), fixed.numpy() if remedy else None)
    curve = plots.saturation_figure(ws, sat_raw, sat_fix if remedy else None)
    info = _info("last-step x̂ before clipping", len(rows) * n, _nfe(ws, steps), dt) + " · saturated (|x̂|>1): " + ", ".join(
        f"w={w:g}: {100 * s:.1f} %" for w, s in zip(ws, sat_raw))
    return img, hist, curve, info


# ---------------------------------------------------------------- tab 6: live FID / IS curves


def live_curves(w_list, n, steps, sampler: str, progress=gr.Progress()):
    """Stream FID/IS/KID-vs-w curves while samples are generated; yields (figure, status, csv path)."""
    ws = parse_w_list(w_list, max_values=MAX_CURVE_POINTS)
    n, steps, sampler = check_curve_n(n), check_steps(steps), check_sampler(sampler)
    big = plots.read_big_sweep()
    points = [SweepPoint(w) for w in ws]
    csv_path = Path(tempfile.mkdtemp(prefix="cfg_curves_")) / "curves.csv"
    updates = _locked_sweep(points, n, steps, sampler, first_batch=max(2, min(10, 2400 // (len(ws) * steps))))
    try:
        for upd in updates:
            rows = upd.rows(steps, sampler)
            write_csv(csv_path, rows)
            progress(upd.done / upd.total, desc=f"N = {upd.done}/{upd.total} per w")
            status = f"N = {upd.done} of {upd.total} per w · {len(ws)} w values · {upd.elapsed:.1f} s"
            yield plots.curves_figure(rows, big), status, str(csv_path)
    finally:
        updates.close()


def initial_curves() -> object:
    """The precomputed big sweep and the paper's table, before any live run."""
    return plots.curves_figure([], plots.read_big_sweep())
