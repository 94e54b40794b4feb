"""The Gradio Blocks layout: components and event wiring only; all work happens in demo.handlers."""
from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from demo import handlers as H
from demo import plots, texts
from demo.components import raw

ROOT = Path(__file__).resolve().parent.parent

try:  # ZeroGPU on Hugging Face Spaces; a no-op elsewhere.
    import spaces  # type: ignore

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        """No-op stand-in for spaces.GPU."""
        return fn

SAMPLER = ["ddim", "ancestral"]
CSS = """
#scrub-view { border: 1px solid #ccc; margin: 4px 0; }
.gradio-container { max-width: 1400px !important; }
"""


def _common(steps_default: int = H.DEFAULT_STEPS):
    with gr.Row():
        sampler = raw(gr.Radio(SAMPLER, value="ddim", label="sampler", info="ancestral = the paper's sampler (with v)"))
        steps = raw(gr.Slider(1, 256, value=steps_default, step=1, label="steps T", info="paper: T = 256; 10 is fast here"))
    return sampler, steps


def _class_seeds(cls_default: int, n_default: int):
    """The class / first seed / seed count controls shared by the comparison tabs (call inside a Row)."""
    cls = raw(gr.Slider(0, 9, value=cls_default, step=1, label="class c"))
    seed = raw(gr.Number(0, precision=0, label="first seed"))
    n = raw(gr.Slider(1, 12, value=n_default, step=1, label="seeds"))
    return cls, seed, n


def build_demo() -> gr.Blocks:
    """Build the seven-tab app."""
    H.pipe()  # load and sha256-check the weights at start-up: a corrupt file fails here, clearly
    with gr.Blocks(title="CFG Explorer") as demo:
        gr.Markdown(texts.INTRO, latex_delimiters=texts.LATEX)
        with gr.Tabs():
            # ---------------------------------------------------------------- 1
            with gr.Tab("Guidance sweep", id="sweep", elem_id="tab-sweep"):
                gr.Markdown(texts.SWEEP, latex_delimiters=texts.LATEX)
                with gr.Row():
                    mode = raw(gr.Radio(["single class", "random classes"], value="single class", label="mode"))
                    cls = raw(gr.Slider(0, 9, value=3, step=1, label="class c"))
                    w_list = gr.Textbox("0, 0.1, 0.3, 1, 2, 4", label="w values (columns)")
                with gr.Row():
                    n_seeds = raw(gr.Slider(1, 16, value=6, step=1, label="seeds (rows)"))
                    seed0 = raw(gr.Number(0, precision=0, label="first seed"))
                    v = raw(gr.Slider(0, 1, value=0.3, step=0.05, label="v (ancestral variance interpolation)"))
                sampler, steps = _common()
                go_btn = gr.Button("Generate grid", variant="primary", elem_id="generate-grid")
                grid = gr.Image(label="rows: seeds · columns: w", format="png", type="pil", elem_id="grid-image")
                grid_info = gr.Markdown(elem_id="grid-info")
                go_btn.click(gpu(H.guidance_grid), [mode, cls, w_list, n_seeds, seed0, sampler, v, steps], [grid, grid_info],
                             api_name="guidance_grid")
                gr.Examples([["single class", 7, "0, 1, 3", 6, 0, "ddim", 0.3, 10],
                             ["random classes", 0, "0, 1, 3", 6, 0, "ddim", 0.3, 10]],
                            [mode, cls, w_list, n_seeds, seed0, sampler, v, steps], [grid, grid_info], fn=H.guidance_grid,
                            cache_examples=True, cache_mode="lazy", label="Figure 3: w = 0 / 1 / 3",
                            elem_id="preset-figure3")
                gr.Markdown(texts.SCRUB, latex_delimiters=texts.LATEX)
                w_slider = raw(gr.Slider(-1, 20, value=0, step=0.05, label="w (s = 1 + w)", elem_id="w-slider"))
                s_view = gr.Markdown("s = 1 + w = 1")
                row = gr.Image(label="8 same-seed samples at this w", format="png", type="pil", elem_id="row-image")
                row_info = gr.Markdown()
                strip_btn = gr.Button("Build scrub strip (29 w values, one batched run)")
                strip = gr.HTML(elem_id="scrub-html")
                strip_info = gr.Markdown()
                w_slider.release(gpu(H.slider_row), [w_slider, cls, seed0, sampler, steps], [row, row_info],
                                 api_name="slider_row", trigger_mode="always_last")
                w_slider.input(None, [w_slider], None, js=plots.SCRUB_JS, api_visibility="private")
                w_slider.change(H.s_of_w, [w_slider], [s_view],
                                api_name="s_of_w", queue=False)
                strip_btn.click(gpu(H.scrub_strip), [cls, seed0, sampler, steps], [strip, strip_info], api_name="scrub_strip")
            # ---------------------------------------------------------------- 2
            with gr.Tab("Inside one step", id="inside"):
                gr.Markdown(texts.INSIDE, latex_delimiters=texts.LATEX)
                with gr.Row():
                    i_cls = raw(gr.Slider(0, 9, value=4, step=1, label="class c"))
                    i_seed = raw(gr.Number(0, precision=0, label="seed"))
                    i_w = raw(gr.Slider(-1, 20, value=2, step=0.1, label="w"))
                    i_steps = raw(gr.Slider(2, 64, value=16, step=1, label="steps T"))
                    i_sampler = raw(gr.Radio(SAMPLER, value="ddim", label="sampler"))
                i_step = raw(gr.Slider(0, 63, value=8, step=1, label="step i (0 = pure noise)"))
                i_img = gr.Image(label="z_λ · x̂ · ε(z,c) · ε(z) · ε(z,c)−ε(z) = −σ∇log p^i(c|z) · ε̃",
                                 format="png", type="pil")
                i_plot = gr.Plot(label="linear extrapolation")
                i_info = gr.Markdown()
                i_inputs = [i_cls, i_seed, i_w, i_steps, i_sampler, i_step]
                i_steps.change(H.step_range, [i_steps], [i_step], api_name="step_range",
                               queue=False)
                i_btn = gr.Button("Show step", variant="primary")
                i_btn.click(gpu(H.inside_step), i_inputs, [i_img, i_plot, i_info], api_name="inside_step")
                i_step.release(gpu(H.inside_step), i_inputs, [i_img, i_plot, i_info], api_name="inside_step_slider",
                               trigger_mode="always_last")
                gr.Markdown("**Trajectory animation**: $\\hat x$ over the denoising steps for several $w$, side by side.",
                            latex_delimiters=texts.LATEX)
                a_ws = gr.Textbox("0, 1, 3, 8", label="w values (up to 4)")
                a_btn = gr.Button("Animate")
                a_img = gr.Image(label="trajectory (animated WebP)", type="filepath")
                a_info = gr.Markdown()
                a_btn.click(gpu(H.trajectory_animation), [i_cls, i_seed, a_ws, i_steps, i_sampler], [a_img, a_info],
                            api_name="trajectory_animation")
            # ---------------------------------------------------------------- 3
            with gr.Tab("Truncation vs guidance", id="truncation"):
                gr.Markdown(texts.TRUNCATION, latex_delimiters=texts.LATEX)
                with gr.Row():
                    t_cls, t_seed, t_n = _class_seeds(2, 8)
                    t_thr = gr.Textbox("2, 1, 0.5, 0.04", label="truncation thresholds")
                    t_temp = raw(gr.Slider(0, 1, value=0.6, step=0.05, label="noise temperature (initial + per step)"))
                    t_ws = gr.Textbox("1, 3", label="CFG w values")
                t_sampler, t_steps = _common(16)
                t_btn = gr.Button("Compare on the same seeds", variant="primary")
                t_img = gr.Image(label="same seeds in every row", format="png", type="pil", elem_id="truncation-image")
                t_info = gr.Markdown()
                t_inputs = [t_cls, t_seed, t_n, t_thr, t_temp, t_ws, t_steps, t_sampler]
                t_btn.click(gpu(H.truncation_compare), t_inputs, [t_img, t_info], api_name="truncation_compare")
                gr.Examples([[2, 0, 8, "2, 1, 0.5, 0.04", 0.6, "1, 3", 16, "ancestral"]], t_inputs, [t_img, t_info],
                            fn=H.truncation_compare, cache_examples=True, cache_mode="lazy", label="Truncation 2 → 0.04",
                            elem_id="preset-truncation")
                t_plot = gr.Plot(value=H.precomputed_tradeoff(), label="FID vs IS: CFG and the truncation baselines")
                with gr.Row():
                    t_live_n = raw(gr.Slider(10, 2000, value=100, step=10, label="N per point (live)"))
                    t_live_btn = gr.Button("Recompute these curves live")
                    t_live_stop = gr.Button("Stop", variant="stop")
                t_live_status = gr.Markdown()
                t_run = t_live_btn.click(gpu(H.live_tradeoff), [t_live_n, t_steps, t_sampler], [t_plot, t_live_status],
                                         api_name="live_tradeoff", concurrency_limit=1)
                t_live_stop.click(None, None, None, cancels=[t_run], api_visibility="private")
            # ---------------------------------------------------------------- 4
            with gr.Tab("Classifier guidance vs CFG", id="classifier"):
                gr.Markdown(texts.CLASSIFIER, latex_delimiters=texts.LATEX)
                with gr.Row():
                    c_cls, c_seed, c_n = _class_seeds(8, 6)
                    c_scales = gr.Textbox("1, 3, 10", label="guidance scales w")
                c_sampler, c_steps = _common(16)
                c_btn = gr.Button("Compare", variant="primary")
                c_img = gr.Image(label="rows: method and w · columns: the same seeds", format="png", type="pil")
                c_plot = gr.Plot(label="confidence")
                c_info = gr.Markdown()
                c_btn.click(gpu(H.classifier_vs_cfg), [c_cls, c_seed, c_n, c_scales, c_steps, c_sampler],
                            [c_img, c_plot, c_info], api_name="classifier_vs_cfg")
            # ---------------------------------------------------------------- 5
            with gr.Tab("Saturation lab", id="saturation"):
                gr.Markdown(texts.SATURATION, latex_delimiters=texts.LATEX)
                with gr.Row():
                    s_cls, s_seed, s_n = _class_seeds(0, 6)
                    s_ws = gr.Textbox("0, 1, 4", label="w values")
                with gr.Row():
                    s_dyn = gr.Checkbox(False, label="dynamic thresholding (p = 99.5 %)")
                    s_phi = raw(gr.Slider(0, 1, value=0, step=0.05, label="CFG-rescale φ (0 = off)"))
                    s_int = gr.Checkbox(False, label="guidance interval λ ∈ [−4, 6]")
                s_sampler, s_steps = _common()
                s_btn = gr.Button("Generate", variant="primary")
                s_img = gr.Image(label="samples (rows: w, and w + remedy when toggled)", format="png", type="pil",
                                 elem_id="saturation-image")
                with gr.Row():
                    s_hist = gr.Plot(label="histogram of the last-step x̂ before clipping")
                    s_curve = gr.Plot(label="saturated fraction vs w")
                s_info = gr.Markdown()
                s_inputs = [s_cls, s_seed, s_n, s_ws, s_dyn, s_phi, s_int, s_steps, s_sampler]
                s_btn.click(gpu(H.saturation_lab), s_inputs, [s_img, s_hist, s_curve, s_info], api_name="saturation_lab")
                gr.Examples([[0, 0, 6, "4, 8", True, 0.0, False, 10, "ddim"]], s_inputs, [s_img, s_hist, s_curve, s_info],
                            fn=H.saturation_lab, cache_examples=True, cache_mode="lazy",
                            label="Saturation at w = 8 (with and without dynamic thresholding)", elem_id="preset-saturation")
            # ---------------------------------------------------------------- 6
            with gr.Tab("FID / IS curves (live)", id="curves"):
                gr.Markdown(texts.CURVES, latex_delimiters=texts.LATEX)
                with gr.Row():
                    f_ws = gr.Textbox("0, 0.1, 0.3, 0.5, 1, 2, 4", label="w values")
                    f_n = raw(gr.Slider(10, 2000, value=200, step=10, label="N samples per w"))
                f_sampler, f_steps = _common()
                with gr.Row():
                    f_start = gr.Button("Start", variant="primary", elem_id="curves-start")
                    f_stop = gr.Button("Stop", variant="stop")
                f_status = gr.Markdown()
                f_plot = gr.Plot(value=H.initial_curves(), label="FID / IS vs w")
                f_csv = gr.File(label="results (CSV)")
                run = f_start.click(gpu(H.live_curves), [f_ws, f_n, f_steps, f_sampler], [f_plot, f_status, f_csv],
                                    api_name="live_curves", concurrency_limit=1)
                f_stop.click(None, None, None, cancels=[run], api_visibility="private")
            # ---------------------------------------------------------------- 7
            with gr.Tab("The idea", id="idea"):
                gr.Markdown(texts.IDEA, latex_delimiters=texts.LATEX)
    demo.queue(default_concurrency_limit=2, max_size=64)
    H.start_compile_warmup()
    return demo


def launch_kwargs() -> dict:
    """launch() arguments: theme and CSS, and only assets/ may be served."""
    return dict(theme=gr.themes.Soft(), css=CSS, allowed_paths=[str(ROOT / "assets")], show_error=True,
                server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
