"""Plain handler functions behind every tab: validated inputs in, PIL images / plotly figures / text out.

Each takes the app's Runtime first (ui.py binds it) and the model's name last, defaulting to the default model, so
the positional API calls of the one-model app keep working. They are testable without a browser.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Iterator

import gradio as gr
import numpy as np
import torch
from PIL import Image

from core.data import load_split, to_uint8
from core.diffusion import alpha_sigma
from core.guidance import (DYNAMIC_THRESHOLD_P, GUIDANCE_INTERVAL, METHOD_TABLE, APGParams, GuidanceOptions,
                           cfg_combine, classifier_log_prob, implicit_classifier_grad, method)
from core.images import grid_image
from core.metrics import class_balanced_accuracy, colour_stats, per_class_accuracy
from core.noise import NoiseConfig
from core import toy
from core.registry import DEFAULT_MODEL, ModelCard
from core.sampling import (DEFAULT_V, SAMPLERS, SamplerConfig, generate, generate_classifier_guided,
                           generate_with_raw_x, sampling_logsnrs)
from core.sweep import SweepConfig, SweepPoint, SweepUpdate, sweep_stream, write_csv
from demo import plots, results, texts
from demo.runtime import ModelSlot, Runtime
from demo.validate import (MAX_CURVE_POINTS, check_class, check_curve_n, check_grid_size, check_int, check_model,
                           check_n_seeds, check_range, check_sampler, check_seed, check_steps, check_threshold,
                           check_unit, check_v, check_w, parse_scale_list, parse_w_list, split_list)

DEFAULT_STEPS = 10
SWEEP_CLASS, SWEEP_WS, SWEEP_SEEDS = 3, "0, 0.1, 0.3, 1, 2, 4", 6  # the Guidance sweep tab's class, columns and rows
ROW_SEEDS = 8
SCRUB_WS = [-1.0, -0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0,
            3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0]
TRUNCATIONS = [2.0, 1.0, 0.5, 0.04]
TRAJECTORY_CACHE = 8  # trajectories kept per model for the step slider
INSIDE_STEPS, INSIDE_STEP = 16, 8  # the "Inside one step" tab's default T and step i


def _slot(rt: Runtime, model) -> ModelSlot:
    return rt.slot(check_model(model, rt.names))


def class_labels(mode: str, cls, seeds: list[int], card: ModelCard) -> list[int]:
    """'single class' → cls for every seed; 'random classes' → a class drawn from each seed alone."""
    if mode == "random classes":
        return [int(np.random.default_rng(s).integers(card.num_classes)) for s in seeds]
    if mode != "single class":
        raise gr.Error(f"unknown mode {mode!r}: choose 'single class' or 'random classes'")
    return [check_class(cls, card.num_classes)] * len(seeds)


def _u8(x: torch.Tensor) -> np.ndarray:
    """(R, S, C, H, W) in [−1, 1] → uint8 (R, S, H, W) for grey or (R, S, H, W, 3) for RGB."""
    r, s = x.shape[:2]
    u = to_uint8(x.reshape(r * s, *x.shape[2:]))
    return u.reshape(r, s, *u.shape[1:])


def _nfe(ws: list[float], steps: int) -> int:
    return steps * (2 if any(w != 0 for w in ws) else 1)


def _sampling(sampler, steps, v=DEFAULT_V, opts: GuidanceOptions = GuidanceOptions()) -> SamplerConfig:
    """The validated sampling request of a handler's sampler, steps T and v inputs."""
    return SamplerConfig(check_sampler(sampler), check_steps(steps), check_v(v), opts=opts)


def _seeds(seed_start, n: int) -> list[int]:
    """The validated seeds s0, …, s0 + n − 1 of a handler's first-seed input (n already checked)."""
    s0 = check_seed(seed_start)
    return list(range(s0, s0 + n))


def _sample(slot: ModelSlot, seeds, labels, ws, sampling: SamplerConfig, noise=NoiseConfig(),
            callback=None, progress_only: bool = False) -> torch.Tensor:
    """A same-seed grid on the slot's model, from its result cache when the same request was made before. A request
    whose callback wants to see every step is always computed; one whose callback only reports progress
    (progress_only) is cached too, and a hit reports none."""
    def compute() -> torch.Tensor:
        if callback is None:  # a short request: queued on the model, coalesced with others, ahead of long jobs
            return slot.batcher.submit((list(seeds), list(labels), [float(w) for w in ws]), sampling, noise)
        with slot.lock:
            return generate(slot.pipe.model, seeds, labels, ws, sampling, noise, callback=callback)

    if callback is not None and not progress_only:
        return compute()
    compiled = slot.pipe.model.compiled is not None  # eager and compiled kernels may differ in the last bits

    def key(w_tuple: tuple) -> tuple:
        return slot.card.sha256, compiled, tuple(seeds), tuple(labels), w_tuple, sampling, noise

    # Each w's row of a grid is what a request of that row alone gets (same seeds ⇒ same pixels, tested), so a grid is
    # assembled from cached rows when all are there, and a computed grid leaves its rows behind for the slider.
    ws = tuple(float(w) for w in ws)
    row_keys = [key((w,)) for w in ws] if len(ws) > 1 else []
    if row_keys and key(ws) not in slot.results and all(k in slot.results for k in row_keys):
        rows = [slot.results.peek(k) for k in row_keys]
        if all(r is not None for r in rows):  # (none evicted meanwhile)
            return torch.cat(rows)
    x = slot.results.get_or_compute(key(ws), compute)
    for k, row in zip(row_keys, x.split(1)):
        slot.results.put(k, row.clone())
    return x


def _info(what: str, n_samples: int, nfe: int, seconds: float) -> str:
    return f"{what} · {n_samples} samples · NFE {nfe} per sample · {seconds:.2f} s wall"


def _w_label(w: float) -> str:
    return f"w={w:g} (s={1 + w:g})"


def _cls_label(card: ModelCard, c: int) -> str:
    """A class's name as drawn on images (PIL's default font is ASCII-only)."""
    return card.class_names[c].encode("ascii", "replace").decode()


# ---------------------------------------------------------------- the model selector

def model_card_text(rt: Runtime, model=DEFAULT_MODEL) -> str:
    """The selected model's card: title, classes, image size, data source, licence and training recipe."""
    slot = _slot(rt, model)
    card = slot.card
    classes = ", ".join(f"{i} = {n}" for i, n in enumerate(card.class_names))
    return (f"**{card.title}** · {card.channels}×{card.image_size}×{card.image_size} · classes: {classes}  \n"
            f"Data: {card.data_source} · Licence: {card.licence}  \n"
            + (f"Training: {card.recipe} · " if card.recipe else "") + f"Network: {slot.warmup.state}")


def serving_stats(rt: Runtime) -> dict:
    """Per loaded model: the result cache's hits, misses and bytes, the coalescing queue's runs, requests served and
    requests waiting now, and whether the start-up prefill is done (for load tests and the Space's operator)."""
    out = {}
    for name in rt.loaded():
        slot = rt.slot(name)
        c, b = slot.results, slot.batcher
        out[name] = {"cache_hits": c.hits, "cache_misses": c.misses, "cache_bytes": c.bytes,
                     "runs": b.runs, "requests": b.jobs, "waiting": b.waiting(), "prefilled": slot.prefilled.is_set()}
    lab = rt.toy_results
    out["exact_lab"] = {"cache_hits": lab.hits, "cache_misses": lab.misses, "cache_bytes": lab.bytes,
                        "prefilled": rt.toy_prefilled.is_set()}
    return out


def model_card_status(rt: Runtime, model=DEFAULT_MODEL) -> tuple[str, dict]:
    """The card as the page loads, and on each poll while a compile runs: the runtime's state now, and the poll timer
    kept active only while some model is still compiling."""
    text = model_card_text(rt, model)
    compiling = any(rt.slot(name).warmup.state in ("not started", "compiling") for name in rt.names)
    return text, gr.Timer(active=compiling)


def class_choices_of(card: ModelCard) -> list[tuple[str, int]]:
    """The class control's choices: each class's name, sending its index."""
    return [(name, i) for i, name in enumerate(card.class_names)]


def class_choices(rt: Runtime, model, *current) -> tuple:
    """The class controls follow the model: its class names; a current class it does not have falls back to 0."""
    card = _slot(rt, model).card
    return tuple(gr.update(choices=class_choices_of(card), value=c if isinstance(c, int) and 0 <= c < card.num_classes else 0)
                 for c in current)


def sampler_defaults(rt: Runtime, model, *current) -> tuple:
    """Every sampler control follows the model: its card's default sampler (issue #25)."""
    card = _slot(rt, model).card
    return tuple(gr.update(value=card.default_sampler) for _ in current)


# ---------------------------------------------------------------- tab 1: guidance sweep (paper Fig. 3)

def guidance_grid(rt: Runtime, mode: str, cls, w_list, n_seeds, seed_start, sampler: str, v, steps,
                  model=DEFAULT_MODEL) -> tuple[Image.Image, str]:
    """Rows = seeds, columns = w values, the exact same noise per row (paper Fig. 3)."""
    slot = _slot(rt, model)
    ws = parse_w_list(w_list)
    n = check_n_seeds(n_seeds)
    seeds = _seeds(seed_start, n)
    sc = _sampling(sampler, steps, v)
    check_grid_size(len(ws), n)
    labels = class_labels(mode, cls, seeds, slot.card)
    t = time.perf_counter()
    x = _sample(slot, seeds, labels, ws, sc)
    dt = time.perf_counter() - t
    imgs = _u8(x).swapaxes(0, 1)  # (seeds, ws, H, W[, 3])
    img = grid_image(imgs, 3, [f"seed {s}: {_cls_label(slot.card, c)}" for s, c in zip(seeds, labels)],
                     [_w_label(w) for w in ws])
    return img, _info(f"{sc.sampler}, T={sc.steps}", len(ws) * n, _nfe(ws, sc.steps), dt)


def slider_row(rt: Runtime, w, cls, seed_start, sampler: str, steps, model=DEFAULT_MODEL) -> tuple[Image.Image, str]:
    """One row of 8 same-seed samples at a single w (the slider's release)."""
    slot = _slot(rt, model)
    w = check_w(w)
    c = check_class(cls, slot.card.num_classes)
    seeds, sc = _seeds(seed_start, ROW_SEEDS), _sampling(sampler, steps)
    t = time.perf_counter()
    x = _sample(slot, seeds, [c] * ROW_SEEDS, [w], sc)
    dt = time.perf_counter() - t
    img = grid_image(_u8(x), 3)
    return img, _info(f"w = {w:g}, s = 1+w = {1 + w:g}, {sc.sampler} T={sc.steps}", ROW_SEEDS, _nfe([w], sc.steps), dt)


def prefill(rt: Runtime) -> None:
    """Put what every student of a class asks for first into the result cache once its compile warm-up is over: each
    model's default grid, and its scrub strip, whose rows are the default slider row at every w of SCRUB_WS (issue #24:
    a lecture starts with everyone asking at once); then the exact lab's default curves."""
    rt.load_all()  # every model loaded and its warm-up started (once), so that the waits below end
    for name in rt.names:
        rt.slot(name).warmup.wait()
        if rt.closing.is_set():
            return
        card = rt.card(name)
        c = min(SWEEP_CLASS, card.num_classes - 1)  # the class control's default, as demo.ui sets it
        s = card.default_sampler  # the sampler control's default
        guidance_grid(rt, "single class", c, SWEEP_WS, SWEEP_SEEDS, 0, s, DEFAULT_V, DEFAULT_STEPS, name)
        scrub_strip(rt, c, 0, s, DEFAULT_STEPS, name, progress=lambda *a, **k: None)  # its rows: the slider's
        rt.slot(name).prefilled.set()
    prefill_lab(rt)


def s_of_w(w) -> str:
    """The diffusers-style scale next to the paper's w."""
    w = check_w(w)
    return f"w = {w:g}, s = 1 + w = {1 + w:g}"


def scrub_strip(rt: Runtime, cls, seed_start, sampler: str, steps, model=DEFAULT_MODEL,
                progress=gr.Progress()) -> tuple[str, str]:
    """A dense same-seed strip over SCRUB_WS, as one sprite sheet the browser scrubs through with no round trip."""
    slot = _slot(rt, model)
    c = check_class(cls, slot.card.num_classes)
    seeds, sc = _seeds(seed_start, ROW_SEEDS), _sampling(sampler, steps)
    steps = sc.steps
    progress(0, desc=f"sampling {len(SCRUB_WS)} w values × {ROW_SEEDS} seeds in one batched run")
    lams = sampling_logsnrs(steps, *slot.card.logsnr_range)

    def cb(i, *_):
        progress((i + 1) / steps, desc=f"step {i + 1}/{steps} (λ = {lams[i]:.2f})")

    t = time.perf_counter()
    x = _sample(slot, seeds, [c] * ROW_SEEDS, SCRUB_WS, sc, callback=cb, progress_only=True)
    dt = time.perf_counter() - t
    sheet = grid_image(_u8(x), 3, pad=2)  # row j is the strip's frame at SCRUB_WS[j]
    html = plots.sprite_html(sheet, SCRUB_WS, row_h=slot.card.image_size * 3 + 2)
    return html, _info(f"scrub strip ready: drag the slider ({sc.sampler} T={steps})", len(SCRUB_WS) * ROW_SEEDS,
                       _nfe(SCRUB_WS, steps), dt)


# ---------------------------------------------------------------- tab 2: inside one step (implicit classifier)

def _trajectory(slot: ModelSlot, c: int, seed: int, w: float, steps: int, sampler: str) -> dict:
    """z, x̂, ε(z, c) and ε(z) of one sample at every step (the last TRAJECTORY_CACHE are kept in the slot)."""
    key = (c, seed, w, steps, sampler)
    if key in slot.trajectories:
        return slot.trajectories[key]
    traj = {"z": [], "x": [], "eps_c": [], "eps_u": [], "lam": list(sampling_logsnrs(steps, *slot.card.logsnr_range)[:steps])}

    def cb(i, z, x_raw, eps_c, eps_u):
        for k, t in (("z", z), ("x", x_raw), ("eps_c", eps_c), ("eps_u", eps_u)):
            traj[k].append(t[:1].float().cpu().clone())

    _sample(slot, [seed], [c], [w], SamplerConfig(sampler, steps, opts=GuidanceOptions(always_uncond=True)), callback=cb)
    slot.trajectories[key] = traj
    while len(slot.trajectories) > TRAJECTORY_CACHE:
        slot.trajectories.pop(next(iter(slot.trajectories)))
    return traj


def inside_step(rt: Runtime, cls, seed, w, steps, sampler: str, step,
                model=DEFAULT_MODEL) -> tuple[Image.Image, object, str]:
    """z_λ, x̂, ε(z,c), ε(z), their difference and ε̃ at one step of the real trajectory, plus the extrapolation plot."""
    slot = _slot(rt, model)
    c, seed, w = check_class(cls, slot.card.num_classes), check_seed(seed), check_w(w)
    steps, sampler = check_steps(steps), check_sampler(sampler)
    i = check_int(step, "step", 0, steps - 1)
    tr = _trajectory(slot, c, seed, w, steps, sampler)
    lam = tr["lam"][i]
    sigma = float(alpha_sigma(torch.tensor(lam, dtype=torch.float64))[1])
    e_c, e_u = tr["eps_c"][i], tr["eps_u"][i]
    e_t = cfg_combine(e_c, e_u, torch.tensor([w]))
    grad = implicit_classifier_grad(e_c, e_u, lam)  # ∇_z log p^i(c|z) = −(ε(z,c) − ε(z)) / σ
    # PIL's built-in font is ASCII-only: panel labels spell the symbols out (the UI caption uses the real ones).
    panels = [("z_lambda", tr["z"][i], "sym"), ("x_hat", tr["x"][i].clamp(-1, 1), "x"), ("eps(z,c)", e_c, "sym"),
              ("eps(z)", e_u, "sym"), ("eps(z,c)-eps(z)", e_c - e_u, "diff"), ("eps~ guided", e_t, "sym")]
    img = plots.panel_row([(name, a[0].numpy(), mode) for name, a, mode in panels])
    fig = plots.extrapolation_figure(e_u[0].numpy(), e_c[0].numpy(), e_t[0].numpy(), w)
    info = (f"step i = {i} of 0…{steps - 1}: λ = {lam:.2f}, σ_λ = {sigma:.3f}; ‖∇_z log p^i(c|z)‖ = ‖ε(z,c) − ε(z)‖/σ = "
            f"{float(grad.norm()):.2f}; ε̃ = (1+w)·ε(z,c) − w·ε(z) with w = {w:g} (s = {1 + w:g})")
    return img, fig, info


def step_range(steps) -> dict:
    """The step slider follows T: steps 0 … T − 1."""
    return gr.update(maximum=check_steps(steps) - 1)


def trajectory_animation(rt: Runtime, cls, seed, w_list, steps, sampler: str, model=DEFAULT_MODEL) -> tuple[str, str]:
    """An animated WebP of x̂ along the denoising trajectory for up to 4 w values side by side."""
    slot = _slot(rt, model)
    c, seed = check_class(cls, slot.card.num_classes), check_seed(seed)
    ws = parse_w_list(w_list, max_values=4)
    steps, sampler = check_steps(steps), check_sampler(sampler)
    frames: list[np.ndarray] = []

    def cb(i, z, x_raw, eps_c, eps_u):
        frames.append(to_uint8(x_raw.clamp(-1, 1)))

    t = time.perf_counter()
    x = _sample(slot, [seed], [c], ws, SamplerConfig(sampler, steps), callback=cb)
    frames.append(_u8(x)[:, 0])
    dt = time.perf_counter() - t
    pil = [grid_image(f[None], 4, col_labels=[_w_label(w) for w in ws]) for f in frames]
    out = rt.outputs.new("trajectory.webp")
    pil[0].save(out, format="WEBP", save_all=True, append_images=pil[1:] + [pil[-1]] * 6, duration=120, loop=0, lossless=True)
    return str(out), _info(f"trajectory of x̂ over {steps} steps", len(ws), _nfe(ws, steps), dt)


# ---------------------------------------------------------------- tab 3: truncation vs guidance

def _locked_sweep(slot: ModelSlot, cfg: SweepConfig) -> Iterator[SweepUpdate]:
    """sweep_stream with the model lock held while sampling a batch only, so other users' requests interleave.

    Batches are sized to ≈ 4 s of sampling (cfg.target_batch_seconds), so Stop or a closed page (which closes this
    generator) frees the worker quickly. Metrics are lazy: the consumer's rows() computes them after the lock is
    released. (Computing them in a thread beside the sampler was tried: numpy's and torch's threads then fight over
    the 2 cores, 1.2× slower.)
    """
    stream = sweep_stream(slot.pipe.model, slot.pipe.features, slot.pipe.ref, cfg, slot.pipe.guide_for(cfg.opts.method))
    with slot.curves_lock:
        slot.curves += 1
    try:
        while True:
            with slot.lock:
                upd = next(stream, None)
            if upd is None:
                return
            yield upd
    finally:  # the consumer went away (Stop, closed page) or the sweep ended
        stream.close()
        with slot.curves_lock:
            slot.curves -= 1


def _live_config(points: list[SweepPoint], n: int, steps: int, sampler: str, first_batch: int,
                 opts: GuidanceOptions = GuidanceOptions()) -> SweepConfig:
    return SweepConfig(tuple(points), n, steps, sampler, batch=100, first_batch=first_batch, kid_subsets=10,
                       kid_subset_size=200, target_batch_seconds=4.0, lazy_metrics=True, opts=opts)


def truncation_compare(rt: Runtime, cls, seed_start, n_seeds, thresholds_text, temperature, w_list, steps, sampler: str,
                       model=DEFAULT_MODEL) -> tuple[Image.Image, str]:
    """BigGAN truncation of the initial noise and a lower noise temperature, next to CFG, on the same seeds."""
    slot = _slot(rt, model)
    c, n = check_class(cls, slot.card.num_classes), check_n_seeds(n_seeds)
    seeds = _seeds(seed_start, n)
    items = split_list(thresholds_text)
    if not items:
        raise gr.Error("give at least one truncation threshold, e.g. 2, 1, 0.5, 0.04")
    thr = [check_threshold(t) for t in items[:6]]
    temp = check_unit(temperature, "noise temperature") if temperature is not None else 1.0
    ws = parse_w_list(w_list, max_values=6)
    sc = _sampling(sampler, steps)
    check_grid_size(len(thr) + 1 + len(ws), n)
    labels = [c] * n
    t = time.perf_counter()
    rows, names = [], []
    for th in thr:
        rows.append(_sample(slot, seeds, labels, [0.0], sc, noise=NoiseConfig(truncation=th))[0])
        names.append(f"truncate |z|<={th:g}")
    rows.append(_sample(slot, seeds, labels, [0.0], sc,
                        noise=NoiseConfig(temperature=temp, step_temperature=temp))[0])
    names.append(f"temperature {temp:g}")
    rows.extend(_sample(slot, seeds, labels, ws, sc))
    names += [f"CFG {_w_label(w)}" for w in ws]
    dt = time.perf_counter() - t
    img = grid_image(_u8(torch.stack(rows)), 3, names)
    return img, _info("truncation / temperature (w = 0) vs CFG, same seeds", len(rows) * n, _nfe(ws, sc.steps), dt)


def live_tradeoff(rt: Runtime, n, steps, sampler: str, model=DEFAULT_MODEL, progress=gr.Progress()):
    """Recompute the FID-vs-IS curves of CFG and of the truncation / temperature baselines live, streaming."""
    slot = _slot(rt, model)
    n, steps, sampler = check_curve_n(n), check_steps(steps), check_sampler(sampler)
    points = [SweepPoint(w) for w in (0.0, 0.5, 1.0, 3.0)]
    points += [SweepPoint(0.0, NoiseConfig(truncation=t)) for t in TRUNCATIONS]
    points.append(SweepPoint(0.0, NoiseConfig(temperature=0.6, step_temperature=0.6)))
    updates = _locked_sweep(slot, _live_config(points, n, steps, sampler, first_batch=4))
    shipped = results.shipped_sweeps(slot.card)
    try:
        for upd in updates:
            progress(upd.done / upd.total, desc=f"N = {upd.done}/{upd.total} per point")
            live = results.Sweep(f"live ({sampler}, T={steps}, N={upd.done})", sampler, steps, upd.done, upd.rows())
            yield (plots.tradeoff_figure([live] + shipped, slot.card),
                   f"N = {upd.done} of {upd.total} per point · {len(points)} points · {upd.elapsed:.1f} s")
    finally:
        updates.close()


def _fid(v: float) -> str:
    """A FID as quoted in texts: three significant digits, whole numbers from 100."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def truncation_text(rt: Runtime, model=DEFAULT_MODEL) -> str:
    """The Truncation tab's text, with the figures read from the selected model's shipped sweeps (none copied in)."""
    card = rt.card(check_model(model, rt.names))
    lines = []
    for sw in results.shipped_sweeps(card):
        base = [r for r in sw.rows if results.is_cfg(r)]
        w0 = next((r for r in base if r["w"] == 0 and r["truncation"] is None and r["temperature"] == 1), None)
        trunc = sorted((r for r in base if r["truncation"] is not None), key=lambda r: -r["truncation"])
        temp = sorted((r for r in base if r["temperature"] != 1), key=lambda r: -r["temperature"])
        if w0 is None or not (trunc or temp):
            continue
        guided = min((r for r in base if r["w"] > 0 and r["truncation"] is None and r["temperature"] == 1),
                     key=lambda r: r["FID"], default=None)
        parts = [f"w = 0: FID {_fid(w0['FID'])}"] + [f"truncation {r['truncation']:g}: {_fid(r['FID'])}" for r in trunc]
        parts += [f"temperature {r['temperature']:g}: {_fid(r['FID'])}" for r in temp]
        if guided is not None:
            parts.append(f"best CFG: {_fid(guided['FID'])} at w = {guided['w']:g} (s = {1 + guided['w']:g})")
        lines.append(f"- **{card.name}, {sw.name}:** " + " · ".join(parts))
    return texts.TRUNCATION + ("\n".join(lines) or f"- no shipped truncation sweep for {card.name}")


def precomputed_tradeoff(rt: Runtime, model=DEFAULT_MODEL) -> object:
    """FID-vs-IS of the shipped sweeps: CFG points, truncation and temperature baselines, for each sampler."""
    card = rt.card(check_model(model, rt.names))
    return plots.tradeoff_figure(results.shipped_sweeps(card), card)


# ---------------------------------------------------------------- tab 4: classifier guidance vs CFG

def classifier_vs_cfg(rt: Runtime, cls, seed_start, n_seeds, scales_text, steps, sampler: str,
                      model=DEFAULT_MODEL) -> tuple[Image.Image, object, str]:
    """Noisy-classifier guidance at several scales (on ε(z,c) and on ε(z)) next to CFG; confidence of both classifiers."""
    slot = _slot(rt, model)
    card, p = slot.card, slot.pipe
    c, n = check_class(cls, card.num_classes), check_n_seeds(n_seeds)
    seeds = _seeds(seed_start, n)
    scales = parse_w_list(scales_text, max_values=5)
    sc = _sampling(sampler, steps)
    check_grid_size(3 * len(scales), n)
    lp = classifier_log_prob(p.noisy_classifier)
    rows, names = [], []
    t = time.perf_counter()
    with slot.lock:
        for guide_uncond in (False, True):
            rows.extend(generate_classifier_guided(p.model, lp, seeds, [c] * n, scales, sc, guide_uncond=guide_uncond))
            names += [f"CG on {'eps(z)' if guide_uncond else 'eps(z,c)'} w={s:g}" for s in scales]
        rows.extend(generate(p.model, seeds, [c] * n, scales, sc))
    names += [f"CFG {_w_label(s)}" for s in scales]
    dt = time.perf_counter() - t
    x_all = torch.stack(rows)  # (R, n, C, H, W)
    flat = x_all.reshape(-1, *x_all.shape[2:])
    lam_clean = torch.full((flat.shape[0],), card.logsnr_range[1], device=flat.device)  # λ_max: z ≈ x
    with torch.inference_mode():
        p_guide = torch.softmax(p.noisy_classifier(flat.to(p.device), lam_clean), 1)[:, c].reshape(len(rows), n).mean(1)
    _, probs = p.features(flat)
    p_metric = torch.from_numpy(probs[:, c]).reshape(len(rows), n).mean(1)
    fig = plots.confidence_figure(names, p_guide.cpu().numpy(), p_metric.numpy())
    img = grid_image(_u8(x_all), 3, names)
    return img, fig, _info("classifier guidance vs CFG", len(rows) * n, _nfe(scales, sc.steps), dt)


# ---------------------------------------------------------------- tab 5: saturation lab

def saturation_lab(rt: Runtime, cls, seed_start, n_seeds, w_list, dyn_threshold: bool, rescale_phi, use_interval: bool,
                   steps, sampler: str, model=DEFAULT_MODEL) -> tuple[Image.Image, object, object, str, object, object]:
    """Per w: samples without and with the chosen remedies, the histogram of x̂ before clipping, the saturated fraction,
    and for a colour model the colour metrics over w and a hue–saturation scatter of the pixels."""
    slot = _slot(rt, model)
    c, n = check_class(cls, slot.card.num_classes), check_n_seeds(n_seeds)
    seeds = _seeds(seed_start, n)
    ws = parse_w_list(w_list, max_values=8)
    phi = check_unit(rescale_phi, "CFG-rescale φ")
    sc = _sampling(sampler, steps)
    check_grid_size(2 * len(ws), n)
    opts = GuidanceOptions(dynamic_threshold=DYNAMIC_THRESHOLD_P if dyn_threshold else None, rescale_phi=phi,
                           interval=GUIDANCE_INTERVAL if use_interval else None)
    remedy = any([dyn_threshold, phi > 0, use_interval])
    t = time.perf_counter()
    with slot.lock:
        m = slot.pipe.model
        img_raw, raw = generate_with_raw_x(m, seeds, [c] * n, ws, sc)
        img_fix, fixed = generate_with_raw_x(m, seeds, [c] * n, ws, replace(sc, opts=opts)) if remedy else (img_raw, raw)
    dt = time.perf_counter() - t
    names = [_w_label(w) for w in ws]
    rows = [img_raw[j] for j in range(len(ws))]
    labels = list(names)
    if remedy:
        tag = "+".join(k for k, on in [("dyn-thr", dyn_threshold), (f"rescale phi={phi:g}", phi > 0),
                                       ("interval", use_interval)] if on)
        rows = [r for j in range(len(ws)) for r in (img_raw[j], img_fix[j])]
        labels = [l for name in names for l in (name, f"{name} + {tag}")]
    img = grid_image(_u8(torch.stack(rows)), 3, labels)
    sat_raw = (raw.abs() > 1.0).float().mean(dim=(1, 2, 3, 4)).numpy()
    sat_fix = (fixed.abs() > 1.0).float().mean(dim=(1, 2, 3, 4)).numpy()
    hist = plots.histogram_figure(ws, raw.numpy(), fixed.numpy() if remedy else None)
    curve = plots.saturation_figure(ws, sat_raw, sat_fix if remedy else None)
    info = _info("last-step x̂ before clipping", len(rows) * n, _nfe(ws, sc.steps), dt) + " · saturated (|x̂|>1): " + ", ".join(
        f"w={w:g}: {100 * s:.1f} %" for w, s in zip(ws, sat_raw))
    colour, scatter = _colour_figures(slot, ws, _u8(img_raw), _u8(img_fix) if remedy else None)
    return img, hist, curve, info, colour, scatter


def _colour_figures(slot: ModelSlot, ws: list[float], u8: np.ndarray, u8_fix: np.ndarray | None) -> tuple:
    """The colour metrics over w (the real data's level dotted) and the pixels' hue vs saturation at the smallest and
    largest w; for a grey model two notes (the UI hides their column: colour_panels)."""
    if slot.card.channels != 3:
        note = plots.note_figure("a grey model has no colour: pick a colour model", height=120)
        return note, note
    stats = [colour_stats(u8[j]) for j in range(len(ws))]
    fixed = [colour_stats(u8_fix[j]) for j in range(len(ws))] if u8_fix is not None else None
    lo, hi = int(np.argmin(ws)), int(np.argmax(ws))
    scatter = plots.hue_saturation_figure({f"w = {ws[lo]:g}": u8[lo], f"w = {ws[hi]:g}": u8[hi]})
    return plots.colour_figure(ws, stats, fixed, _data_colour(slot)), scatter


def colour_panels(rt: Runtime, model=DEFAULT_MODEL) -> dict:
    """The saturation lab's colour panels are shown for a colour model only."""
    return gr.update(visible=rt.card(check_model(model, rt.names)).channels == 3)


def _data_colour(slot: ModelSlot) -> dict:
    """colour_stats of the real held-out images, computed once per model."""
    if "colour" not in slot.data_stats:
        x, _ = load_split("heldout", slot.card.dataset)
        slot.data_stats["colour"] = colour_stats(to_uint8(x))
    return slot.data_stats["colour"]


def _data_reading(slot: ModelSlot) -> tuple[np.ndarray, np.ndarray]:
    """The metric classifier's probabilities on the real held-out images and their labels, computed once per model:
    what a sample's "class accuracy" is read against (emoji groups overlap, so real emoji are not all recognised)."""
    if "reading" not in slot.data_stats:
        x, y = load_split("heldout", slot.card.dataset)
        slot.data_stats["reading"] = (slot.pipe.features(x)[1], y.numpy())
    return slot.data_stats["reading"]


# ---------------------------------------------------------------- tab 6: live FID / IS curves

def live_curves(rt: Runtime, w_list, n, steps, sampler: str, model=DEFAULT_MODEL, progress=gr.Progress()):
    """Stream FID/IS/KID-vs-w curves while samples are generated; yields (figure, status, csv path)."""
    slot = _slot(rt, model)
    ws = parse_w_list(w_list, max_values=MAX_CURVE_POINTS)
    n, steps, sampler = check_curve_n(n), check_steps(steps), check_sampler(sampler)
    shipped = results.shipped_sweeps(slot.card)
    csv_path = rt.outputs.new("curves.csv")
    cfg = _live_config([SweepPoint(w) for w in ws], n, steps, sampler, first_batch=max(2, min(10, 2400 // (len(ws) * steps))))
    updates = _locked_sweep(slot, cfg)
    try:
        for upd in updates:
            rows = upd.rows()
            write_csv(csv_path, rows)
            progress(upd.done / upd.total, desc=f"N = {upd.done}/{upd.total} per w")
            status = f"N = {upd.done} of {upd.total} per w · {len(ws)} w values · {upd.elapsed:.1f} s"
            live = results.Sweep(f"live ({sampler}, T={steps}, N={upd.done})", sampler, steps, upd.done, rows)
            yield plots.curves_figure(live, shipped, slot.card), status, str(csv_path)
    finally:
        updates.close()


def initial_curves(rt: Runtime, sampler: str = "ddim", steps=DEFAULT_STEPS, model=DEFAULT_MODEL) -> object:
    """The precomputed sweeps (the one matching the sampler and T drawn first) and the paper's table, before a live run."""
    card = rt.card(check_model(model, rt.names))
    empty = results.Sweep("live", check_sampler(sampler), check_steps(steps), 0, [])
    return plots.curves_figure(empty, results.shipped_sweeps(card), card)


# ---------------------------------------------------------------- tab 8: beyond CFG (APG, CFG++, autoguidance)

METHOD_KEYS = {m.label: m.key for m in METHOD_TABLE}  # the method boxes send labels (core.guidance.METHOD_TABLE)


def beyond_text(rt: Runtime) -> str:
    """The "Beyond CFG" tab's method table: what each method does, and what the shipped sweeps of every model measured."""
    shipped = {name: results.shipped_method_rows(rt.card(name)) for name in rt.names}
    rows = [f"| {label} | {idea} | {rule} | {results.method_findings(shipped, method(key).label)} |"
            for key, label, idea, rule in texts.BEYOND_METHODS]
    table = "\n".join(["| method | the idea in one line | the rule, in this app's notation | measured here |",
                       "|---|---|---|---|", *rows])
    return f"{texts.BEYOND_INTRO}\n{table}\n{texts.BEYOND_NOTES}"


def method_choices(rt: Runtime, model=DEFAULT_MODEL) -> list[str]:
    """The methods the model can run: autoguidance only where its weaker model is shipped."""
    slot = _slot(rt, model)
    return [m.label for m in METHOD_TABLE if not m.guide or slot.pipe.guide is not None]


def method_choices_update(rt: Runtime, model, current) -> dict:
    """The method boxes follow the model selector: its methods, keeping the ticked ones it has."""
    choices = method_choices(rt, model)
    return gr.update(choices=choices, value=[m for m in (current or []) if m in choices] or ["CFG"])


def _method_options(slot: ModelSlot, methods, apg_eta, apg_r, apg_beta,
                    apg_clip=False) -> list[tuple[str, GuidanceOptions]]:
    """Validated (name, options) per ticked method."""
    if isinstance(methods, str):
        methods = [methods]
    if not methods:
        labels = [m.label for m in METHOD_TABLE]
        raise gr.Error(f"tick at least one method: {', '.join(labels[:-1])} or {labels[-1]}")
    unknown = [m for m in methods if m not in METHOD_KEYS]
    if unknown:
        raise gr.Error(f"unknown method {unknown[0]!r}: choose from {', '.join(METHOD_KEYS)}")
    if any(method(METHOD_KEYS[m]).guide for m in methods) and slot.pipe.guide is None:
        raise gr.Error(f"autoguidance needs a weaker model, and none is shipped for {slot.card.name!r} yet")
    eta = check_unit(apg_eta, "APG η")
    r = check_range(apg_r, "APG norm bound r (0 = none)", 0.0, 1000.0)
    beta = check_range(apg_beta, "APG momentum β", -0.99, 0.0)
    if not isinstance(apg_clip, bool):
        raise gr.Error(f"APG clip x̂ must be true or false, got {apg_clip!r}")
    apg = APGParams(eta, r or None, beta, apg_clip)
    return [(m, GuidanceOptions(method=METHOD_KEYS[m], apg=apg)) for m in dict.fromkeys(methods)]


def _row_stats(slot: ModelSlot, x: torch.Tensor, labels: list[int]) -> tuple[float, float]:
    """(class accuracy by the metric classifier, colour: mean HSV saturation / grey: share of pixels at 0 or 255)."""
    _, probs = slot.pipe.features(x)
    u8 = to_uint8(x)
    sat = colour_stats(u8)["mean_saturation"] if u8.ndim == 4 else float(((u8 == 0) | (u8 == 255)).mean())
    return float((probs.argmax(1) == np.asarray(labels)).mean()), sat


def beyond_cfg(rt: Runtime, methods, cls, seed_start, n_seeds, w_list, cfgpp_scales, apg_eta, apg_r, apg_beta, steps,
               model=DEFAULT_MODEL, apg_clip=False) -> tuple[Image.Image, object, str]:
    """Rows = method × w on the same seeds (DDIM, which CFG++ needs); per row the class accuracy and saturation."""
    slot = _slot(rt, model)
    chosen = _method_options(slot, methods, apg_eta, apg_r, apg_beta, apg_clip)
    c, n = check_class(cls, slot.card.num_classes), check_n_seeds(n_seeds)
    seeds, labels = _seeds(seed_start, n), [c] * n
    scaled = next(m for m in METHOD_TABLE if m.w_range)  # CFG++: its scale in [0, 1] has its own list
    ws, pp = parse_w_list(w_list, max_values=6), parse_scale_list(cfgpp_scales, f"{scaled.label} {scaled.weight}")
    sc = _sampling("ddim", steps)  # DDIM for every method: CFG++ is defined for DDIM only
    check_grid_size(sum(len(pp) if o.spec.w_range else len(ws) for _, o in chosen), n)
    rows, names, stats = [], [], {}
    t = time.perf_counter()
    for name, opts in chosen:
        grid_ws = pp if opts.spec.w_range else ws
        with slot.lock:
            x = generate(slot.pipe.model, seeds, labels, grid_ws, replace(sc, opts=opts),
                         guide_model=slot.pipe.guide_for(opts.method))
        for w, xj in zip(grid_ws, x):
            rows.append(xj)
            names.append(f"{name} {opts.spec.weight_text(w)}")
            stats.setdefault(name, []).append((w, *_row_stats(slot, xj, labels)))
    dt = time.perf_counter() - t
    img = grid_image(_u8(torch.stack(rows)), 3, names)
    colour = slot.card.channels == 3
    fig = plots.method_tradeoff_figure(stats, "mean HSV saturation" if colour else "share of pixels at 0 or 255",
                                       y_ref=(float(per_class_accuracy(*_data_reading(slot))[c]),
                                              "real held-out images of this class"))
    table = "  \n".join(f"**{m}**: " + ", ".join(f"{method(METHOD_KEYS[m]).weight_text(w)}: accuracy {100 * a:.0f} %, "
                                                   f"{'saturation' if colour else 'clipped'} {sat:.3f}" for w, a, sat in v)
                         for m, v in stats.items())
    return img, fig, _info(f"DDIM for every method ({scaled.label} is defined for DDIM only)", len(rows) * n,
                           sc.nfe, dt) + "  \n" + table


def beyond_plane(rt: Runtime, n, steps, methods, apg_eta, apg_r, apg_beta, model=DEFAULT_MODEL, apg_clip=False,
                 progress=gr.Progress()):
    """Every ticked method's FID-vs-IS curve, recomputed live on the same seeds (streaming), over the shipped ones."""
    slot = _slot(rt, model)
    chosen = _method_options(slot, methods, apg_eta, apg_r, apg_beta, apg_clip)
    n, steps = check_curve_n(n), check_steps(steps)
    curves: dict[str, list[dict]] = {}
    shipped = results.shipped_method_rows(slot.card)
    t = time.perf_counter()
    for k, (name, opts) in enumerate(chosen):
        points = [SweepPoint(w) for w in opts.spec.plane]
        updates = _locked_sweep(slot, _live_config(points, n, steps, "ddim", first_batch=4, opts=opts))
        try:
            for upd in updates:
                progress((k + upd.done / upd.total) / len(chosen), desc=f"{name}: N = {upd.done}/{upd.total}")
                curves[name] = upd.rows()
                yield (plots.method_plane_figure(curves, shipped, slot.card),
                       f"{name}: N = {upd.done} of {upd.total} per point · {time.perf_counter() - t:.1f} s")
        finally:
            updates.close()


def precomputed_plane(rt: Runtime, model=DEFAULT_MODEL) -> tuple[object, object]:
    """The shipped sweeps' FID-vs-IS curves, one per method, and (colour models) accuracy vs saturation per method
    with the real held-out data's saturation and class-balanced accuracy marked."""
    card = rt.card(check_model(model, rt.names))  # the card only: a grey model's figures need no weights
    shipped = results.shipped_method_rows(card)
    sat = results.shipped_method_saturation(shipped)
    if not sat:  # a grey model's sweeps have no colour columns
        return plots.method_plane_figure({}, shipped, card), plots.note_figure(
            "saturation per method: the shipped sweeps of a colour model (emoji) have it")
    slot = _slot(rt, model)
    n = max((int(float(r["N"])) for rows in shipped.values() for r in rows), default=0)
    fig = plots.method_tradeoff_figure(
        sat, "mean HSV saturation", f"{card.title}: accuracy vs saturation per method (shipped sweeps, N={n:,})",
        (_data_colour(slot)["mean_saturation"], "real data"),
        (class_balanced_accuracy(*_data_reading(slot)), "real held-out data (class-balanced)"))
    return plots.method_plane_figure({}, shipped, card), fig


# ---------------------------------------------------------------- tab: the exact 2-D lab (issue #23)

TOY_GRID = 81  # the lab's density contours: 81 × 81 points
TOY_N, TOY_STEPS = 2000, 64  # the lab tab's defaults: N samples per w, and T
TOY_WS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)  # the metric curves' weights (CFG++: its scales, TOY_SCALES)
TOY_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)
TOY_IDENTITY_SEEDS = 64  # the identity's check: seeds 0 … 63 (one toy.PAD batch; 200 took a third of a warm update)


def toy_lab(rt: Runtime, preset: str, cls, w_list, method_label: str, n, steps, sampler: str, show_tilted=False,
            truncation=0.0, w=None) -> tuple[object, str]:
    """CFG (or another method) with the exact scores of a 2-D Gaussian mixture: per w (the list's, then the slider's w
    when given), the samples over the contours of p(x | c) and p(x) (with show_tilted, p_w's and its exact draws; with
    a truncation threshold > 0, the same seeds from truncated initial noise), and the lab's measures against exact
    draws (no network: what is seen is the method)."""
    mix, c, n, sc = _toy_inputs(preset, cls, n, steps, sampler)
    if w is None:
        ws = parse_w_list(w_list, max_values=4)
    else:  # the slider's w, after up to 3 others to compare with (which may be none)
        w = check_w(w)
        ws = [v for v in (parse_w_list(w_list, max_values=3) if str(w_list or "").strip() else []) if v != w] + [w]
    if method_label not in METHOD_KEYS:
        raise gr.Error(f"unknown method {method_label!r}: choose from {', '.join(METHOD_KEYS)}")
    opts = GuidanceOptions(method=METHOD_KEYS[method_label])
    if opts.spec.w_range is not None and not all(opts.spec.w_range[0] <= w <= opts.spec.w_range[1] for w in ws):
        raise gr.Error(f"{method_label}'s {opts.spec.weight} must be in [{opts.spec.w_range[0]:g}, {opts.spec.w_range[1]:g}]")
    if not isinstance(show_tilted, bool):
        raise gr.Error(f"show p_w must be true or false, got {show_tilted!r}")
    if opts.spec.renoise_uncond and sc.sampler != "ddim":
        raise gr.Error(f"{method_label} is defined for DDIM only ({opts.spec.reference}): choose the ddim sampler")
    thr = check_range(truncation, "truncation threshold (0 = off)", 0.0, 10.0)
    sc = replace(sc, opts=opts)
    guide = toy.degraded(mix) if opts.spec.guide else None
    grid = toy.density_grid(TOY_GRID)
    hi = torch.full((grid.shape[0],), toy.LOGSNR_MAX, dtype=torch.float64)
    data = [("p(x|c)", toy.log_density(grid, mix, hi, torch.full((grid.shape[0],), c)).exp(), "#1f77b4", False),
            ("p(x)", toy.log_density(grid, mix, hi).exp(), "#bbbbbb", False)]
    panels, rows = [], []
    measured = _toy_measured(rt, mix, c, ws, sc, n, guide)
    for w, (row, x) in zip(ws, measured):
        contours = [(name, d.reshape(TOY_GRID, TOY_GRID).numpy(), col, f) for name, d, col, f in data]
        points = [(f"{method_label} samples", x.numpy(), "#d62728")]
        if show_tilted:
            dens = torch.softmax(toy.tilted_log_density(grid, mix, c, w), 0).reshape(TOY_GRID, TOY_GRID)
            contours.insert(0, ("p_w(x|c)", dens.numpy(), "#1f77b4", True))
            points.append(("exact draws of p_w", toy.sample_tilted(mix, c, w, n, seed=2).numpy(), "#1f77b4"))
        if thr > 0:
            xt = generate(toy.ExactModel(mix).eval(), list(range(n)), [c] * n, [w], sc, NoiseConfig(truncation=thr),
                          guide_model=toy.ExactModel(guide).eval() if guide is not None else None)
            points.append((f"truncated noise |z| ≤ {thr:g}", xt[0].reshape(-1, 2).numpy(), "#2ca02c"))
        panels.append((f"{opts.spec.weight_text(w)}" + (f" (s={1 + w:g})" if opts.spec.weight == "w" else ""),
                       contours, points))
        rows.append(f"| {w:g} | {row.fidelity:.3f} | {row.coverage:.2f} | {row.outside:.3f} | {row.to_data:.4f} | "
                    f"{row.to_tilted:.4f} | {row.floor:.4f} |")
    if opts.method == "cfg":  # the identity as a number: exact classifier guidance on the same seeds
        x_cfg = torch.stack([x[:TOY_IDENTITY_SEEDS] for _, x in measured])
        gap = rt.toy_identity.get_or_compute((mix, c, tuple(ws), sc, x_cfg.shape[1]),
                                             lambda: _toy_identity(mix, c, ws, sc, x_cfg))
        rows.append("")
        rows.append(f"Classifier guidance with the exact noisy classifier on the same seeds differs from these CFG samples "
                    f"by at most **{gap:.1e}**: rounding. That is why CFG needs no classifier.")
    table = "\n".join([f"| {opts.spec.weight} | mean log p(c\\|x) | mode coverage | outside the 95 % region | "
                       "energy to p(x\\|c) | energy to p_w | two exact draws |", "|---|---|---|---|---|---|---|", *rows])
    return plots.toy_figure(panels, toy.GRID_LIM), table


def _toy_inputs(preset: str, cls, n, steps, sampler: str):
    """The lab's validated preset, class, N and sampling (x̂ clipping off)."""
    if preset not in toy.PRESETS:
        raise gr.Error(f"unknown preset {preset!r}: choose one of {', '.join(toy.PRESETS)}")
    mix = toy.PRESETS[preset]
    return mix, check_class(cls, mix.num_classes), check_int(n, "N (samples per w)", 10, 2000), \
        replace(_sampling(sampler, steps), clip_x=False)


def _toy_identity(mix, c: int, ws: list[float], sc: SamplerConfig, x_cfg: torch.Tensor) -> float:
    """The largest |x_CG − x_CFG| over the same seeds, with the exact classifier guiding (the lab runs in float64);
    x_cfg (len(ws), m, 2): CFG's samples of seeds 0 … m − 1, as the lab measured them (same seed ⇒ same point)."""
    model = toy.ExactModel(mix).eval()

    def log_prob(z, logsnr, cls):
        return toy.log_classifier(z, mix, logsnr).gather(1, cls[:, None])[:, 0]

    seeds = list(range(x_cfg.shape[1]))
    x_cg = generate_classifier_guided(model, log_prob, seeds, [c] * len(seeds), ws, sc)
    return float((x_cg.reshape(x_cfg.shape) - x_cfg).abs().max())


def _toy_measured(rt: Runtime, mix, c: int, ws, sc: SamplerConfig, n: int, guide) -> list:
    """toy.measure_grid, from the runtime's lab cache when the same request was measured before (it is a pure function
    of its request)."""
    return rt.toy_results.get_or_compute(_toy_key(mix, c, ws, sc, n, guide),
                                         lambda: toy.measure_grid(mix, c, list(ws), sc, n, guide))


def _toy_key(mix, c: int, ws, sc: SamplerConfig, n: int, guide) -> tuple:
    """The lab cache's key of a measured grid: its full request."""
    return mix, c, tuple(ws), sc, n, guide


def toy_curves(rt: Runtime, preset: str, cls, n, steps, sampler: str) -> Iterator[tuple[object, str]]:
    """The lab's measures against w for every method on the same seeds: the 2-D analogue of the FID–IS plane. When
    some must be measured (a cold curve takes over a second), streams the figure as each half of a method's weights is
    done (same seed ⇒ same point, so halves measure what one run would); else yields it once."""
    mix, c, n, sc = _toy_inputs(preset, cls, n, steps, sampler)
    methods = [m for m in METHOD_TABLE if sc.sampler == "ddim" or not m.renoise_uncond]  # CFG++ is DDIM-only
    left_out = "".join(f" · {m.label} left out: it is defined for DDIM only" for m in METHOD_TABLE if m not in methods)
    parts = []
    for m in methods:
        ws, sm = TOY_SCALES if m.w_range else TOY_WS, replace(sc, opts=GuidanceOptions(method=m.key))
        half = (len(ws) + 1) // 2  # a method's weights in two halves: each update about a quarter of a second
        parts += [(m, (mix, c, part, sm, n, toy.degraded(mix) if m.guide else None)) for part in (ws[:half], ws[half:])]
    cached = all(_toy_key(*key) in rt.toy_results for _, key in parts)
    title = f"{preset}, class {c}: the exact lab's measures per method ({sc.sampler}, T={sc.steps}, N={n}, same seeds)"
    curves, t = {}, time.perf_counter()
    for k, (m, key) in enumerate(parts, start=1):
        curves.setdefault(m.label, []).extend(row for row, _ in _toy_measured(rt, *key))
        if k == len(parts) or not cached:
            done = "" if k == len(parts) else f" · measuring {parts[k][0].label} …"
            yield plots.toy_curves_figure(curves, title), \
                f"{len(curves)} of {len(methods)} methods · {sum(len(v) for v in curves.values())} points · " \
                f"{time.perf_counter() - t:.2f} s{done}{left_out}"


def prefill_lab(rt: Runtime) -> None:
    """Measure the exact lab's curves of every preset, class and sampler at the tab's defaults into the lab cache (at
    start-up, after the models' prefill: a cold curve takes 1–1.5 s on 2 cores, a cached one a tenth of that)."""
    for preset, mix in toy.PRESETS.items():
        for c, sampler in itertools.product(range(mix.num_classes), SAMPLERS):
            if rt.closing.is_set():
                return
            for _ in toy_curves(rt, preset, c, TOY_N, TOY_STEPS, sampler):
                pass
    rt.toy_prefilled.set()


def toy_field(rt: Runtime, preset: str, cls, w, step, steps, sampler: str) -> tuple[object, str]:
    """At step i of the lab's sampler: the noisy marginal p_λ(z | c), the guidance field ε*(z, c) − ε*(z) (the implicit
    classifier, −σ∇log p^i(c | z)) as arrows, and the paths of 12 seeds at w = 0 and at w."""
    mix, c, _, sc = _toy_inputs(preset, cls, 12, steps, sampler)
    w = check_w(w)
    i = check_int(step, "step", 0, sc.steps - 1)
    model = toy.ExactModel(mix).eval()
    paths = {}
    for name, wi in (("w = 0", 0.0), (f"w = {w:g} (s = {1 + w:g})", w)):
        zs = []
        x = generate(model, list(range(12)), [c] * 12, [wi], sc,
                     callback=lambda k, z, *_: zs.append(z.reshape(-1, 2).double().clone()))
        paths[name] = torch.stack(zs + [x.reshape(-1, 2).double()]).numpy()
    lam = sampling_logsnrs(sc.steps, *model.cfg.logsnr_range)[i]
    lam_t = torch.full((15 * 15,), lam, dtype=torch.float64)
    grid = toy.density_grid(15, 1.4)
    sigma = float(torch.sigmoid(torch.tensor(-lam)).sqrt())
    # σ∇ log p^i(c | z) = −(ε*(z, c) − ε*(z)): the implicit classifier's pull, where guidance moves z (towards class c)
    field = sigma * (toy.score(grid, mix, lam_t, torch.full((225,), c)) - toy.score(grid, mix, lam_t))
    field = field * (0.12 / max(float(field.norm(dim=1).max()), 1e-12))  # the longest arrow 0.12 long
    t = torch.linspace(-toy.GRID_LIM, toy.GRID_LIM, TOY_GRID, dtype=torch.float64)
    dense = toy.density_grid(TOY_GRID)
    dens = toy.log_density(dense, mix, torch.full((dense.shape[0],), lam, dtype=torch.float64),
                           torch.full((dense.shape[0],), c)).exp().reshape(TOY_GRID, TOY_GRID)
    fig = plots.toy_field_figure(t.numpy(), dens.numpy(), (grid.numpy(), (grid + field).numpy()), paths, i,
                                 f"step i = {i} of 0…{sc.steps - 1}: λ = {lam:.2f}, σ = {sigma:.3f}")
    return fig, (f"step i = {i}: λ = {lam:.2f}. Arrows: σ∇_z log p^i(c|z) = −(ε*(z,c) − ε*(z)), the exact implicit "
                 f"classifier's pull, which guidance adds w times (to scale within the step; the longest is 0.12). "
                 f"Paths: 12 seeds from z_λmin to x.")
