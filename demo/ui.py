"""The Gradio Blocks layout: components and event wiring only; all work happens in demo.handlers.

Every handler gets the app's Runtime bound as its first argument, and the model selector as its last input.
"""
from __future__ import annotations

import atexit
import os
import threading
from functools import partial
from pathlib import Path

import gradio as gr

from core.guidance import GUIDANCE_INTERVAL, METHOD_TABLE, RESCALE_PHI, APGParams
from core.sampling import DEFAULT_V, SAMPLERS
from demo import handlers as H
from demo import plots, texts
from demo.components import CheckboxGroup, Dropdown, Number, Radio, Slider
from core.registry import ModelCard
from demo.batcher import MAX_QUEUED
from demo.runtime import Runtime
from demo.validate import MAX_STEPS, W_MAX, W_MIN

ROOT = Path(__file__).resolve().parent.parent
UNGUIDED_BY_A_MODEL = [m.label for m in METHOD_TABLE if not m.guide]  # the Beyond tab's default methods (no weaker model)
SCALED = next(m for m in METHOD_TABLE if m.w_range)  # CFG++: its weight is a scale in [0, 1], with its own list
# A classroom (issue #24): the short sampling events run many at once, since they mostly wait on the result cache or
# the model's coalescing queue (demo/batcher.py), which bounds the work and answers "busy" past MAX_QUEUED; Gradio's
# own queue is larger, so a student hears that message rather than Gradio's "queue is full".
SHORT_CONCURRENCY = 2 * MAX_QUEUED
QUEUE_SIZE = 256

try:  # ZeroGPU on Hugging Face Spaces; a no-op elsewhere.
    import spaces  # type: ignore

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        """No-op stand-in for spaces.GPU."""
        return fn

CSS = """
#scrub-view { border: 1px solid #ccc; margin: 4px 0; }
#scrub-html { overflow-x: auto; }
.gradio-container { max-width: 1400px !important; }
/* Sample grids: the label and the buttons sit above the image, never over a sample; the image is never shrunk below
   its own size (its labels stay readable), a wide grid scrolls sideways instead. */
.sample-grid label[data-testid="block-label"] { position: static; margin-bottom: 4px; }
.sample-grid .icon-button-wrapper.top-panel { position: static; justify-content: flex-end; margin: 0 0 4px auto; }
.sample-grid .image-container { height: auto; }
.sample-grid .image-container > button { overflow-x: auto; max-width: 100%; display: block; text-align: left; }
.sample-grid .image-frame { justify-content: flex-start !important; width: max-content; }
.sample-grid .image-frame img { max-width: none; width: auto; height: auto; object-fit: none; }
/* Multi-panel charts keep a readable width; on a narrow screen they scroll sideways instead of shrinking. */
.wide-plot { overflow-x: auto; }
.wide-plot .js-plotly-plot, .wide-plot .plot-container { min-width: 820px; }
/* Narrow screens: rows stack, so the model card, checkboxes and side-by-side charts get the full width. */
@media (max-width: 640px) {
  .row { flex-direction: column !important; }
  .row > * { width: 100% !important; min-width: 0 !important; flex: 1 1 auto !important; }
  /* Tables keep their words whole and scroll sideways, instead of wrapping a letter a line. */
  .prose table { display: block; overflow-x: auto; max-width: 100%; }
  .prose th, .prose td { white-space: nowrap; }
}
"""


def _bind(rt: Runtime, fn):
    """The handler with the runtime bound (and spaces.GPU on ZeroGPU)."""
    return gpu(partial(fn, rt))


def _stats(rt: Runtime):
    def serving_stats() -> dict:
        """The result caches' and coalescing queues' counters, per loaded model."""
        return H.serving_stats(rt)

    return serving_stats


def _sampler(card: ModelCard, samplers: list, **kw) -> Radio:
    """The sampler control, at the model card's default sampler; collected so the model selector updates it."""
    sampler = Radio(list(SAMPLERS), value=card.default_sampler, label="sampler", **kw)
    samplers.append(sampler)
    return sampler


def _sampler_steps(card: ModelCard, samplers: list, steps_default: int = H.DEFAULT_STEPS):
    with gr.Row():
        sampler = _sampler(card, samplers, info="ancestral = the paper's sampler (with v)")
        steps = Slider(1, MAX_STEPS, value=steps_default, step=1, label="steps T", info="paper: T = 256; 10 is fast here")
    return sampler, steps


def _samples(label: str, elem_id: str | None = None) -> gr.Image:
    """An output grid of samples: exact PNG, its label and buttons above the image (CSS .sample-grid)."""
    return gr.Image(label=label, format="png", type="pil", elem_id=elem_id, elem_classes="sample-grid",
                    buttons=["download", "fullscreen"])


def _presets(rt: Runtime, fn, rows: list[tuple[str, list]], inputs: list, outputs: list, model, label: str,
             elem_id: str) -> None:
    """Cached presets (gr.Examples), each shown as one line naming its settings and the model it switches to, since a
    preset also sets the model selector (a table of every input was cut off on the right)."""
    at = next(i for i, c in enumerate(inputs) if c is model)
    gr.Examples([values for _, values in rows], inputs, outputs, fn=partial(fn, rt), cache_examples=True,
                cache_mode="lazy", label=f"{label} (a preset also sets the model selector)", elem_id=elem_id,
                example_labels=[f"{values[at]}: {text}" for text, values in rows])  # Gradio cuts a label at 60 characters


def _class(card: ModelCard, default: int, classes: list) -> Dropdown:
    """The class control: the model's class names, sending the class index; collected so the model selector updates it."""
    cls = Dropdown(H.class_choices_of(card), value=min(default, card.num_classes - 1), label="class c")
    classes.append(cls)
    return cls


def _class_seeds(card: ModelCard, cls_default: int, n_default: int, classes: list):
    """The class / first seed / seed count controls shared by the comparison tabs (call inside a Row)."""
    cls = _class(card, cls_default, classes)
    seed = Number(0, precision=0, label="first seed")
    n = Slider(1, 12, value=n_default, step=1, label="seeds")
    return cls, seed, n


def _colour_model(rt: Runtime) -> str | None:
    """The first shipped colour model (for the colour presets), if any."""
    return next((name for name in rt.names if rt.card(name).channels == 3), None)


def _sweep_tab(rt: Runtime, model, card: ModelCard, classes: list, samplers: list) -> None:
    gr.Markdown(texts.SWEEP, latex_delimiters=texts.LATEX)
    with gr.Row():
        mode = Radio(["single class", "random classes"], value="single class", label="mode")
        cls = _class(card, H.SWEEP_CLASS, classes)
        w_list = gr.Textbox(H.SWEEP_WS, label="w values (columns)")
    with gr.Row():
        n_seeds = Slider(1, 16, value=H.SWEEP_SEEDS, step=1, label="seeds (rows)")
        seed0 = Number(0, precision=0, label="first seed")
        v = Slider(0, 1, value=DEFAULT_V, step=0.05, label="v (ancestral variance interpolation)")
    sampler, steps = _sampler_steps(card, samplers)
    go_btn = gr.Button("Generate grid", variant="primary", elem_id="generate-grid")
    grid = _samples("rows: seeds · columns: w", "grid-image")
    grid_info = gr.Markdown(elem_id="grid-info")
    inputs = [mode, cls, w_list, n_seeds, seed0, sampler, v, steps, model]
    go_btn.click(_bind(rt, H.guidance_grid), inputs, [grid, grid_info], api_name="guidance_grid",
                 concurrency_limit=SHORT_CONCURRENCY)
    _presets(rt, H.guidance_grid, [
        ("class 7, w = 0, 1, 3, DDIM T = 10", ["single class", 7, "0, 1, 3", 6, 0, "ddim", DEFAULT_V, 10, rt.default]),
        ("random classes, w = 0, 1, 3, DDIM T = 10",
         ["random classes", 0, "0, 1, 3", 6, 0, "ddim", DEFAULT_V, 10, rt.default])],
        inputs, [grid, grid_info], model, "Figure 3: w = 0 / 1 / 3", "preset-figure3")
    colour = _colour_model(rt)
    if colour is not None:
        _presets(rt, H.guidance_grid, [("random classes, w = 0 and 3, ancestral T = 64",
                                        ["random classes", 0, "0, 3", 9, 0, "ancestral", DEFAULT_V, 64, colour])],
                 inputs, [grid, grid_info], model, "Figure 4: colour at w = 0 vs w = 3", "preset-figure4")
    gr.Markdown(texts.SCRUB, latex_delimiters=texts.LATEX)
    w_slider = Slider(W_MIN, W_MAX, value=0, step=0.05, label="w (s = 1 + w)", elem_id="w-slider")
    s_view = gr.Markdown("s = 1 + w = 1")
    row = _samples("8 same-seed samples at this w", "row-image")
    row_info = gr.Markdown()
    strip_btn = gr.Button("Build scrub strip (29 w values, one batched run)")
    strip = gr.HTML(elem_id="scrub-html")
    strip_info = gr.Markdown()
    w_slider.release(_bind(rt, H.slider_row), [w_slider, cls, seed0, sampler, steps, model], [row, row_info],
                     api_name="slider_row", trigger_mode="always_last", concurrency_limit=SHORT_CONCURRENCY)
    w_slider.input(None, [w_slider], None, js=plots.SCRUB_JS, api_visibility="private")
    w_slider.change(H.s_of_w, [w_slider], [s_view], api_name="s_of_w", queue=False)
    strip_btn.click(_bind(rt, H.scrub_strip), [cls, seed0, sampler, steps, model], [strip, strip_info],
                    api_name="scrub_strip")


def _inside_tab(rt: Runtime, model, card: ModelCard, classes: list, samplers: list) -> None:
    gr.Markdown(texts.INSIDE, latex_delimiters=texts.LATEX)
    with gr.Row():
        cls = _class(card, 4, classes)
        seed = Number(0, precision=0, label="seed")
        w = Slider(W_MIN, W_MAX, value=2, step=0.1, label="w")
        steps = Slider(2, 64, value=H.INSIDE_STEPS, step=1, label="steps T")
        sampler = _sampler(card, samplers)
    step = Slider(0, H.INSIDE_STEPS - 1, value=H.INSIDE_STEP, step=1, label="step i (0 = pure noise, T − 1 = the last)",
                  elem_id="inside-step")
    gr.Markdown("**Panels:** $z_\\lambda$ · $\\hat x$ · $\\epsilon(z,c)$ · $\\epsilon(z)$ · "
                "$\\epsilon(z,c)-\\epsilon(z) = -\\sigma_\\lambda\\nabla\\log p^i(c|z)$ · $\\tilde\\epsilon$",
                latex_delimiters=texts.LATEX)
    img = _samples("z, x̂, ε(z,c), ε(z), their difference and ε̃ at step i", "inside-image")
    plot = gr.Plot(label="linear extrapolation")
    info = gr.Markdown()
    inputs = [cls, seed, w, steps, sampler, step, model]
    steps.change(H.step_range, [steps], [step], api_name="step_range", queue=False)
    btn = gr.Button("Show step", variant="primary")
    btn.click(_bind(rt, H.inside_step), inputs, [img, plot, info], api_name="inside_step")
    step.release(_bind(rt, H.inside_step), inputs, [img, plot, info], api_name="inside_step_slider",
                 trigger_mode="always_last")
    gr.Markdown("**Trajectory animation**: $\\hat x$ over the denoising steps for several $w$, side by side.",
                latex_delimiters=texts.LATEX)
    ws = gr.Textbox("0, 1, 3, 8", label="w values (up to 4)")
    a_btn = gr.Button("Animate")
    a_img = gr.Image(label="trajectory (animated WebP)", type="filepath")
    a_info = gr.Markdown()
    a_btn.click(_bind(rt, H.trajectory_animation), [cls, seed, ws, steps, sampler, model], [a_img, a_info],
                api_name="trajectory_animation")


def _truncation_tab(rt: Runtime, model, card: ModelCard, classes: list, samplers: list):
    text = gr.Markdown(H.truncation_text(rt, rt.default), latex_delimiters=texts.LATEX, elem_id="truncation-text")
    model.change(_bind(rt, H.truncation_text), [model], [text], api_name="truncation_text")
    with gr.Row():
        cls, seed, n = _class_seeds(card, 2, 8, classes)
        thr = gr.Textbox("2, 1, 0.5, 0.04", label="truncation thresholds")
        temp = Slider(0, 1, value=0.6, step=0.05, label="noise temperature (initial + per step)")
        ws = gr.Textbox("1, 3", label="CFG w values")
    sampler, steps = _sampler_steps(card, samplers)  # T = 10: the live recompute matches the shipped sweep
    btn = gr.Button("Compare on the same seeds", variant="primary")
    img = _samples("same seeds in every row", "truncation-image")
    info = gr.Markdown()
    inputs = [cls, seed, n, thr, temp, ws, steps, sampler, model]
    btn.click(_bind(rt, H.truncation_compare), inputs, [img, info], api_name="truncation_compare")
    _presets(rt, H.truncation_compare, [("truncation 2 … 0.04, temperature 0.6, ancestral", [2, 0, 8, "2, 1, 0.5, 0.04", 0.6, "1, 3", 16, "ancestral",
                                                              rt.default])],
             inputs, [img, info], model, "Truncation 2 → 0.04", "preset-truncation")
    plot = gr.Plot(value=H.precomputed_tradeoff(rt, rt.default), label="FID vs IS: CFG and the truncation baselines")
    with gr.Row():
        live_n = Slider(10, 2000, value=100, step=10, label="N per point (live)")
        live_btn = gr.Button("Recompute these curves live")
        live_stop = gr.Button("Stop", variant="stop")
    live_status = gr.Markdown()
    run = live_btn.click(_bind(rt, H.live_tradeoff), [live_n, steps, sampler, model], [plot, live_status],
                         api_name="live_tradeoff", concurrency_limit=1)
    live_stop.click(None, None, None, cancels=[run], api_visibility="private")
    return plot


def _classifier_tab(rt: Runtime, model, card: ModelCard, classes: list, samplers: list) -> None:
    gr.Markdown(texts.CLASSIFIER, latex_delimiters=texts.LATEX)
    with gr.Row():
        cls, seed, n = _class_seeds(card, 8, 6, classes)
        scales = gr.Textbox("1, 3, 10", label="guidance scales w")
    sampler, steps = _sampler_steps(card, samplers, 16)
    btn = gr.Button("Compare", variant="primary")
    img = _samples("rows: method and w · columns: the same seeds", "classifier-image")
    plot = gr.Plot(label="confidence")
    info = gr.Markdown()
    btn.click(_bind(rt, H.classifier_vs_cfg), [cls, seed, n, scales, steps, sampler, model], [img, plot, info],
              api_name="classifier_vs_cfg")


def _saturation_tab(rt: Runtime, model, card: ModelCard, classes: list, samplers: list) -> None:
    gr.Markdown(texts.SATURATION, latex_delimiters=texts.LATEX)
    with gr.Row():
        cls, seed, n = _class_seeds(card, 0, 6, classes)
        ws = gr.Textbox("0, 1, 4", label="w values")
    with gr.Row():
        dyn = gr.Checkbox(False, label="dynamic thresholding (p = 99.5 %)")
        phi = Slider(0, 1, value=0, step=0.05, label="CFG-rescale φ (0 = off)")
        interval = gr.Checkbox(False, label=f"guidance interval λ ∈ [{GUIDANCE_INTERVAL[0]:g}, {GUIDANCE_INTERVAL[1]:g}]")
    sampler, steps = _sampler_steps(card, samplers)
    btn = gr.Button("Generate", variant="primary")
    img = _samples("samples (rows: w, and w + remedy when toggled)", "saturation-image")
    with gr.Row():
        hist = gr.Plot(label="histogram of the last-step x̂ before clipping")
        curve = gr.Plot(label="saturated fraction vs w")
    info = gr.Markdown()
    with gr.Column(visible=card.channels == 3) as colour_col:  # a grey model has no colour: hidden
        colour = gr.Plot(label="colour saturation vs w", elem_classes="wide-plot")
        scatter = gr.Plot(label="hue vs saturation of the pixels at the smallest and largest w", elem_classes="wide-plot")
    model.change(_bind(rt, H.colour_panels), [model], [colour_col], api_name="colour_panels")
    inputs = [cls, seed, n, ws, dyn, phi, interval, steps, sampler, model]
    outputs = [img, hist, curve, info, colour, scatter]
    btn.click(_bind(rt, H.saturation_lab), inputs, outputs, api_name="saturation_lab")
    _presets(rt, H.saturation_lab, [("w = 4 and 8, dynamic thresholding, DDIM T = 10",
                                     [0, 0, 6, "4, 8", True, 0.0, False, 10, "ddim", rt.default])],
             inputs, outputs, model, "Saturation at w = 8 (with and without dynamic thresholding)", "preset-saturation")
    colour_model = _colour_model(rt)
    if colour_model is not None:
        _presets(rt, H.saturation_lab, [(f"w = 0 and 8, CFG-rescale φ = {RESCALE_PHI:g}, ancestral",
                                         [0, 0, 6, "0, 8", False, RESCALE_PHI, False, 64, "ancestral", colour_model])],
                 inputs, outputs, model, "Saturation at w = 8 and its remedy, CFG-rescale", "preset-colour-saturation")


def _curves_tab(rt: Runtime, model, card: ModelCard, samplers: list):
    gr.Markdown(texts.CURVES, latex_delimiters=texts.LATEX)
    with gr.Row():
        ws = gr.Textbox("0, 0.1, 0.3, 0.5, 1, 2, 4", label="w values")
        n = Slider(10, 2000, value=200, step=10, label="N samples per w")
    sampler, steps = _sampler_steps(card, samplers)
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="curves-start")
        stop = gr.Button("Stop", variant="stop")
    status = gr.Markdown()
    plot = gr.Plot(value=H.initial_curves(rt, "ddim", H.DEFAULT_STEPS, rt.default), label="FID / KID / IS vs w",
                   elem_id="curves-plot", elem_classes="wide-plot")
    csv = gr.File(label="results (CSV)")
    run = start.click(_bind(rt, H.live_curves), [ws, n, steps, sampler, model], [plot, status, csv],
                      api_name="live_curves", concurrency_limit=1)
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    # The precomputed curve drawn solid is the one made with this sampler and T (and the selected model).
    gr.on([sampler.change, steps.change, model.change], _bind(rt, H.initial_curves), [sampler, steps, model], [plot],
          api_name="initial_curves")


def _beyond_tab(rt: Runtime, model, card: ModelCard, classes: list):
    gr.Markdown(H.beyond_text(rt), latex_delimiters=texts.LATEX)
    with gr.Row():
        methods = CheckboxGroup(H.method_choices(rt, rt.default), value=UNGUIDED_BY_A_MODEL, label="methods",
                                elem_id="beyond-methods")
        cls, seed, n = _class_seeds(card, 3, 6, classes)
    with gr.Row():
        ws = gr.Textbox("1, 3, 8", label="w values (CFG, APG, autoguidance)")
        pp = gr.Textbox("0.2, 0.6, 1", label=f"{SCALED.label} {SCALED.weight}s in [{SCALED.w_range[0]:g}, {SCALED.w_range[1]:g}]")
        steps = Slider(1, MAX_STEPS, value=H.DEFAULT_STEPS, step=1, label="DDIM steps T")
    with gr.Row():
        apg = APGParams()
        eta = Slider(0, 1, value=apg.eta, step=0.05, label="APG η (parallel part kept)")
        r = Slider(0, 50, value=apg.norm_bound, step=0.5, label="APG r (norm bound, 0 = none)")
        beta = Slider(-0.95, 0, value=apg.momentum, step=0.05, label="APG β (momentum)")
        clip = gr.Checkbox(apg.clip_x, label="APG: Δ from x̂ clipped to [−1, 1] (off = the paper's rule; see the text)")
    btn = gr.Button("Compare on the same seeds", variant="primary", elem_id="beyond-run")
    img = _samples("rows: method × w · columns: the same seeds", "beyond-image")
    fig = gr.Plot(label="class accuracy vs saturation, per method")
    info = gr.Markdown()
    inputs = [methods, cls, seed, n, ws, pp, eta, r, beta, steps, model, clip]
    btn.click(_bind(rt, H.beyond_cfg), inputs, [img, fig, info], api_name="beyond_cfg")
    defaults = [apg.eta, apg.norm_bound, apg.momentum, H.DEFAULT_STEPS]
    examples = [(f"{', '.join(UNGUIDED_BY_A_MODEL)}, w = 1, 3, 8, class 3",
                 [UNGUIDED_BY_A_MODEL, 3, 0, 6, "1, 3, 8", "0.2, 0.6, 1", *defaults, rt.default, apg.clip_x])]
    colour_model = _colour_model(rt)
    if colour_model is not None:
        examples.append(("CFG vs APG (paper's defaults), w = 8",
                         [["CFG", "APG"], 0, 0, 6, "8", "0.6", *defaults, colour_model, apg.clip_x]))
        # APG without momentum, bound r = 20: the setting that keeps CFG's accuracy here (README, "Beyond CFG")
        examples.append(("CFG vs APG (r = 20, no momentum), w = 8",
                         [["CFG", "APG"], 0, 0, 6, "8", "0.6", 0.0, 20.0, 0.0, H.DEFAULT_STEPS, colour_model, False]))
    _presets(rt, H.beyond_cfg, examples, inputs, [img, fig, info], model, f"w = 8: CFG vs APG (and {SCALED.label})",
             "preset-beyond")
    gr.Markdown("#### The FID–IS plane, per method (same seeds 0…N−1 for every method)")
    with gr.Row():
        n_plane = Slider(10, 500, value=50, step=10, label="N samples per point")
        start = gr.Button("Recompute live", variant="primary")
        stop = gr.Button("Stop", variant="stop")
    plane_0, saturation_0 = H.precomputed_plane(rt, rt.default)
    plane = gr.Plot(value=plane_0, label="FID vs IS per method")
    status = gr.Markdown()
    saturation = gr.Plot(value=saturation_0, label="saturation per method (shipped sweeps; colour models)")
    run = start.click(_bind(rt, H.beyond_plane), [n_plane, steps, methods, eta, r, beta, model, clip], [plane, status],
                      api_name="beyond_plane", concurrency_limit=1)
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    return methods, plane, saturation


def _toy_tab(rt: Runtime) -> None:
    from core.toy import PRESETS

    gr.Markdown(texts.TOY, latex_delimiters=texts.LATEX)
    with gr.Row():
        preset = Radio(sorted(PRESETS), value="rare-mode", label="preset (data in [−1, 1]²)")
        cls = Number(0, precision=0, label="class c (0 = the first)")
        method = Radio([m.label for m in METHOD_TABLE], value="CFG", label="method")
    with gr.Row():
        lab_w = Slider(W_MIN, W_MAX, value=3, step=0.1, label="w (s = 1 + w): samples on release", elem_id="toy-w")
        ws = gr.Textbox("0, 1", label="beside it, w = (up to 3, or none)", elem_id="toy-ws")
    with gr.Row():
        n = Slider(10, 2000, value=H.TOY_N, step=10, label="N samples per w")
        steps = Slider(2, MAX_STEPS, value=H.TOY_STEPS, step=1, label="steps T")
        sampler = Radio(list(SAMPLERS), value="ddim", label="sampler")
        tilted = gr.Checkbox(False, label="show p_w(x|c) ∝ p(x|c)^{1+w} p(x)^{−w} and its exact draws")
        truncation = Number(0, label="truncate the initial noise at |z| ≤ (0 = off)")
    btn = gr.Button("Sample with exact scores", variant="primary", elem_id="toy-run")
    fig = gr.Plot(label="samples over p_w(x|c), per w", elem_id="toy-plot", elem_classes="wide-plot")
    table = gr.Markdown(elem_id="toy-table")
    lab_inputs = [preset, cls, ws, method, n, steps, sampler, tilted, truncation, lab_w]
    btn.click(_bind(rt, H.toy_lab), lab_inputs, [fig, table], api_name="toy_lab")
    lab_w.release(_bind(rt, H.toy_lab), lab_inputs, [fig, table], api_name="toy_lab_w", trigger_mode="always_last")
    gr.Markdown("**Every method against w** (the same seeds; CFG++ against its scale): fidelity rises with w for every "
                "method, and so does the distance to the data; autoguidance keeps its samples inside the class. The "
                "last panel is the distance to p_w: far above two exact draws of p_w, CFG is not sampling it.")
    gr.Markdown("**Trajectories and the guidance field** at one step: the arrows are ε*(z,c) − ε*(z), the implicit "
                "classifier made visible; the paths are 12 seeds at w = 0 and at the slider's w.")
    with gr.Row():
        field_w = Slider(W_MIN, W_MAX, value=3, step=0.1, label="w (s = 1 + w)")
        field_step = Slider(0, H.TOY_STEPS - 1, value=H.TOY_STEPS // 2, step=1, label="step i (0 = pure noise)")
    field_btn = gr.Button("Show the field", elem_id="toy-field-run")
    field = gr.Plot(label="noisy marginal, guidance field and paths", elem_id="toy-field")
    field_info = gr.Markdown()
    field_inputs = [preset, cls, field_w, field_step, steps, sampler]
    field_btn.click(_bind(rt, H.toy_field), field_inputs, [field, field_info], api_name="toy_field")
    field_step.release(_bind(rt, H.toy_field), field_inputs, [field, field_info], api_name="toy_field_step",
                       trigger_mode="always_last")
    steps.change(H.step_range, [steps], [field_step], api_name="toy_step_range", queue=False)
    curves_n = Slider(10, 2000, value=H.TOY_N, step=10, label="N samples per point")
    curves_btn = gr.Button("Curves over w for every method", elem_id="toy-curves-run")
    curves = gr.Plot(label="the lab's measures against w", elem_id="toy-curves", elem_classes="wide-plot")
    curves_info = gr.Markdown()
    curves_btn.click(_bind(rt, H.toy_curves), [preset, cls, curves_n, steps, sampler], [curves, curves_info],
                     api_name="toy_curves")


def _stop_background(rt: Runtime, prefill: threading.Thread) -> None:
    """At exit: the prefill stops after its current step, so that no sampling runs while Python shuts down (a daemon
    thread inside torch then crashes the interpreter)."""
    rt.closing.set()
    prefill.join(60)


def build_demo(rt: Runtime | None = None) -> gr.Blocks:
    """Build the app over the runtime's shipped models (a new Runtime by default)."""
    rt = rt if rt is not None else Runtime()
    rt.load_all()  # load and sha256-check every model at start-up (a corrupt file fails here, clearly); warm-ups start
    prefill = threading.Thread(target=H.prefill, args=(rt,), name="prefill", daemon=True)
    prefill.start()
    atexit.register(_stop_background, rt, prefill)
    card, classes, samplers = rt.card(rt.default), [], []
    with gr.Blocks(title="CFG Explorer", delete_cache=(600, 3600)) as demo:
        gr.Markdown(texts.INTRO, latex_delimiters=texts.LATEX)
        with gr.Row():
            model = Dropdown(rt.names, value=rt.default, label="model (every tab follows it)", elem_id="model-select",
                             scale=1)
            card_md = gr.Markdown(H.model_card_text(rt, rt.default), elem_id="model-card")
        with gr.Tabs(overflow_behavior="wrap"):  # every tab one tap away, also on a phone
            with gr.Tab("Guidance sweep", id="sweep", elem_id="tab-sweep"):
                _sweep_tab(rt, model, card, classes, samplers)
            with gr.Tab("Inside one step", id="inside"):
                _inside_tab(rt, model, card, classes, samplers)
            with gr.Tab("Truncation", id="truncation"):
                tradeoff = _truncation_tab(rt, model, card, classes, samplers)
            with gr.Tab("Classifier guidance", id="classifier"):
                _classifier_tab(rt, model, card, classes, samplers)
            with gr.Tab("Saturation lab", id="saturation"):
                _saturation_tab(rt, model, card, classes, samplers)
            with gr.Tab("FID / IS curves", id="curves"):
                _curves_tab(rt, model, card, samplers)
            with gr.Tab("Beyond CFG", id="beyond"):
                methods, plane, saturation = _beyond_tab(rt, model, card, classes)
            with gr.Tab("Exact 2-D lab", id="toy"):
                _toy_tab(rt)
            with gr.Tab("The idea", id="idea"):
                gr.Markdown(texts.IDEA, latex_delimiters=texts.LATEX)
        gr.Markdown(texts.FOOTER)
        model.change(_bind(rt, H.model_card_text), [model], [card_md], api_name="model_card")
        # The card reads the runtime when the page loads, then every 2 s while a compile is running.
        poll = gr.Timer(2.0, active=True)
        demo.load(_bind(rt, H.model_card_status), [model], [card_md, poll], api_name="model_card_status", queue=False)
        poll.tick(_bind(rt, H.model_card_status), [model], [card_md, poll], api_name="model_card_poll", queue=False)
        model.change(_bind(rt, H.class_choices), [model, *classes], classes, api_name="class_choices")
        model.change(_bind(rt, H.sampler_defaults), [model, *samplers], samplers, api_name="sampler_defaults")
        model.change(_bind(rt, H.precomputed_tradeoff), [model], [tradeoff], api_name="precomputed_tradeoff")
        model.change(_bind(rt, H.method_choices_update), [model, methods], [methods], api_name="method_choices")
        model.change(_bind(rt, H.precomputed_plane), [model], [plane, saturation], api_name="precomputed_plane")
        gr.api(_stats(rt), api_name="serving_stats", queue=False)
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE)
    return demo


def launch_kwargs() -> dict:
    """launch() arguments: theme and CSS, and only assets/ may be served."""
    return dict(theme=gr.themes.Soft(), css=CSS, allowed_paths=[str(ROOT / "assets")], show_error=True,
                max_threads=4 * SHORT_CONCURRENCY,  # the short events' waiting handlers, and every other event's
                server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
