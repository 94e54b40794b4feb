"""Handler unit tests: shapes, labels, same-seed rows and clear errors, without a browser (issue #4)."""
import numpy as np
import gradio as gr
import pytest
import torch

from core.sampling import SamplerConfig
from demo import handlers as H


def _arr(img):
    return np.asarray(img.convert("L"))


def test_guidance_grid_shape_and_same_seed_rows(rt):
    img, info = H.guidance_grid(rt, "single class", 3, "0, 1", 2, 0, "ddim", 0.3, 4)
    a = _arr(img)
    assert a.shape[1] > 2 * 28 * 3 and a.shape[0] >= 2 * 28 * 3 and a.std() > 20
    assert "NFE 8" in info and "4 samples" in info
    # The row of seed 1 at w = 1 equals the single-sample run at w = 1 for seed 1.
    x_grid = H._sample(rt.slot("digits"), [0, 1], [3, 3], [0.0, 1.0], SamplerConfig("ddim", 4))
    x_one = H._sample(rt.slot("digits"), [1], [3], [1.0], SamplerConfig("ddim", 4))
    assert torch.equal(x_grid[1, 1], x_one[0, 0])


def test_random_classes_mode_depends_only_on_seed(rt):
    card = rt.card("digits")
    assert H.class_labels("random classes", 0, [5, 6], card)[0] == H.class_labels("random classes", 0, [9, 5], card)[1]
    assert H.class_labels("single class", 4, [1, 2, 3], card) == [4, 4, 4]


def _sprite_sheet(html: str) -> np.ndarray:
    import base64
    import io
    import re

    from PIL import Image

    b64 = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"))


def test_scrub_strip_frame_equals_the_slider_row(rt):
    """The browser-side strip shows, at w = 1, exactly the pixels the slider's server call returns for w = 1."""
    img, info = H.slider_row(rt, 1.0, 3, 0, "ddim", 3)
    assert "s = 1+w = 2" in info
    row = _arr(img)
    html, sinfo = H.scrub_strip(rt, 3, 0, "ddim", 3, progress=lambda *a, **k: None)
    assert "scrub strip ready" in sinfo
    sheet = _sprite_sheet(html)
    cell_h = 28 * 3 + 2
    assert sheet.shape == (len(H.SCRUB_WS) * cell_h + 2, row.shape[1])
    j = H.SCRUB_WS.index(1.0)
    assert np.array_equal(sheet[j * cell_h: j * cell_h + row.shape[0]], row)
    j0 = H.SCRUB_WS.index(0.0)
    assert not np.array_equal(sheet[j0 * cell_h: j0 * cell_h + row.shape[0]], row)  # w changes the frame


def test_inside_step_shows_six_panels_and_the_extrapolation(rt):
    img, fig, info = H.inside_step(rt, 4, 0, 2.0, 6, "ddim", 3)
    assert _arr(img).shape[1] >= 6 * 28 * 5
    assert "λ =" in info and "σ_λ" in info
    names = [t.name for t in fig.data if t.name]
    assert any("ε̃" in n for n in names) and any("ε(z,c)" in n for n in names)


def test_trajectory_animation_frames_end_on_the_sample(rt):
    from PIL import Image, ImageSequence

    from core.images import grid_image

    ws, steps = [0.0, 3.0], 6
    path, info = H.trajectory_animation(rt, 1, 0, "0, 3", steps, "ddim")
    im = Image.open(path)
    assert im.format == "WEBP"
    frames = [np.asarray(f.convert("L")) for f in ImageSequence.Iterator(im)]
    # x̂ at each of the T steps; the sample (= the last step's clipped x̂) and its hold frames are identical to the
    # last one, and WebP stores identical consecutive frames once.
    assert len(frames) == steps
    x = H._sample(rt.slot('digits'), [0], [1], ws, SamplerConfig("ddim", steps))
    sample = np.asarray(grid_image(H._u8(x)[:, 0][None], 4, col_labels=[H._w_label(w) for w in ws]))
    assert np.array_equal(frames[-1], sample)
    assert not np.array_equal(frames[0], sample)  # the first frame is the noisy start


def test_truncation_rows_differ_from_each_other(rt):
    thr, n = [2.0, 1.0, 0.5, 0.04], 3
    img, info = H.truncation_compare(rt, 2, 0, n, ", ".join(map(str, thr)), 0.6, "1", 6, "ddim")
    a = _arr(img)
    cell = 28 * 3 + 2
    tiles = a[:, -(n * cell + 2):]  # drop the row labels
    rows = [tiles[i * cell: i * cell + cell] for i in range(len(thr) + 2)]  # 4 truncations, temperature, CFG w=1
    assert a.shape[0] == (len(thr) + 2) * cell + 2
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            assert np.abs(rows[i].astype(int) - rows[j].astype(int)).mean() > 1.0, (i, j)


def test_classifier_guidance_raises_the_guides_confidence(rt):
    img, fig, info = H.classifier_vs_cfg(rt, 8, 0, 4, "0, 3", 8, "ddim")
    p_guide, p_metric = np.asarray(fig.data[0].y), np.asarray(fig.data[1].y)
    assert len(p_guide) == len(p_metric) == 6  # CG on ε(z,c), CG on ε(z), CFG; each at w = 0, 3
    # Guiding the unconditional ε(z): w = 0 samples random digits, w = 3 pulls them to class 8.
    assert p_guide[3] > p_guide[2] + 0.2 and p_metric[3] > p_metric[2], (p_guide, p_metric)
    assert p_guide[1] >= p_guide[0] - 1e-3, p_guide  # on ε(z,c) it is already near 1 at w = 0


def test_saturation_lab_strong_guidance_saturates_more(rt):
    img, hist, curve, info, colour, scatter = H.saturation_lab(rt, 0, 0, 4, "0, 8", True, 0.0, False, 10, "ddim")
    raw, fixed = np.asarray(curve.data[0].y), np.asarray(curve.data[1].y)
    assert raw[1] > raw[0] + 3  # % of pixels with |x̂| > 1 before clipping, w = 8 vs w = 0
    assert fixed[1] < raw[1]  # dynamic thresholding pulls x̂ back inside [−1, 1]
    assert "saturated" in info


def test_live_curves_stream_grows(rt):
    gen = H.live_curves(rt, "0, 2", 30, 3, "ddim", progress=lambda *a, **k: None)
    outs = list(gen)
    ns = [int(s.split()[2]) for _, s, _ in outs]
    assert ns == sorted(set(ns)) and ns[-1] == 30 and ns[0] < 30  # N grows to the target, several updates
    import csv

    for fig, status, path in outs[-1:]:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        assert [float(r["w"]) for r in rows] == [0.0, 2.0] and all(int(r["N"]) == 30 for r in rows)
        assert all(np.isfinite(float(r["FID"])) and float(r["IS"]) > 1.5 for r in rows)
        live = [t for t in fig.data if t.name and t.name.startswith("live")]
        assert live and list(live[0].x) == [0.0, 2.0]


def test_live_tradeoff_streams_both_families(rt):
    outs = list(H.live_tradeoff(rt, 10, 2, "ddim", progress=lambda *a, **k: None))
    fig, status = outs[-1]
    assert status.startswith("N = 10")
    names = {tr.name for tr in fig.data}
    live = "live (ddim, T=2, N=10)"
    assert {f"CFG · {live}", f"truncation · {live}", f"temperature · {live}"} <= names
    # Next to it, both shipped sweeps' baselines, each labelled with its sampler, T and N.
    assert {"truncation · precomputed (ddim, T=10, N=2,000)", "truncation · precomputed (ancestral, T=64, N=2,000)"} <= names
    assert fig.layout.yaxis.type == "log"  # collapsed truncation (FID ≈ 344 at 0.04) must not flatten the CFG curve


def test_the_colour_models_tradeoff_shows_both_samplers_at_the_same_cost(rt):
    """The emoji model ships DDIM and the paper's ancestral sampler at T = 10: both sweeps' CFG curves and baselines."""
    names = {tr.name for tr in H.precomputed_tradeoff(rt, "emoji").data}
    assert {f"{fam} · precomputed ({s}, T=10, N=2,000)" for fam in ("CFG", "truncation", "temperature")
            for s in ("ddim", "ancestral")} <= names, names


@pytest.mark.parametrize("call,match", [
    (lambda rt: H.slider_row(rt, float("nan"), 3, 0, "ddim", 4), "finite"),
    (lambda rt: H.slider_row(rt, 25, 3, 0, "ddim", 4), "between -1 and 20"),
    (lambda rt: H.slider_row(rt, "abc", 3, 0, "ddim", 4), "number"),
    (lambda rt: H.slider_row(rt, 1, 10, 0, "ddim", 4), "class"),
    (lambda rt: H.slider_row(rt, 1, 3.5, 0, "ddim", 4), "whole number"),
    (lambda rt: H.slider_row(rt, 1, 3, -1, "ddim", 4), "seed"),
    (lambda rt: H.slider_row(rt, 1, 3, 0, "euler", 4), "unknown sampler"),
    (lambda rt: H.slider_row(rt, 1, 3, 0, "ddim", 0), "steps"),
    (lambda rt: H.guidance_grid(rt, "single class", 3, "", 2, 0, "ddim", 0.3, 4), "empty"),
    (lambda rt: H.guidance_grid(rt, "single class", 3, ",".join(["1"] * 1000), 2, 0, "ddim", 0.3, 4), "too many"),
    (lambda rt: H.guidance_grid(rt, "single class", 3, "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", 64, 0, "ddim", 0.3, 4), "cap"),
    (lambda rt: H.truncation_compare(rt, 2, 0, 2, "0", 0.6, "1", 3, "ddim"), "threshold"),
    (lambda rt: next(H.live_curves(rt, "0", 10**7, 4, "ddim")), "N"),
    (lambda rt: H.slider_row(rt, 1, 3, 0, "ddim", 4, "no-such-model"), "unknown model 'no-such-model': choose one of digits"),
    (lambda rt: H.truncation_compare(rt, 2, 0, 2, "1", 1.5, "1", 3, "ddim"), "noise temperature must be between 0 and 1"),
    (lambda rt: H.saturation_lab(rt, 0, 0, 2, "0, 4", False, -0.5, False, 3, "ddim"), "CFG-rescale φ must be between 0 and 1"),
])
def test_bad_input_is_a_clear_error(rt, call, match):
    with pytest.raises(gr.Error, match=match):
        call(rt)


@pytest.mark.parametrize("sampler,steps,same", [("ddim", 10, "ddim, T=10"), ("ancestral", 64, "ancestral, T=64"),
                                                ("ddim", 32, None)])
def test_curves_overlay_the_precomputed_sweep_with_the_same_settings(rt, sampler, steps, same):
    """Like-for-like: the shipped sweep made with the chosen sampler and T is drawn solid; every curve names its settings."""
    fig = H.initial_curves(rt, sampler, steps)
    names = [t.name for t in fig.data if t.name]
    solid = [n for n in names if n.endswith("same sampler and T")]
    assert solid == ([f"precomputed ({same}, N=2,000) · same sampler and T"] if same else []), names
    assert sum(n.endswith("other settings") for n in names) == 2 - len(solid)
    kid = [t for t in fig.data if t.xaxis == "x2"]  # the KID panel (bias-corrected), one curve per shipped sweep
    assert len(kid) == 2 and all(np.isfinite(t.y).all() for t in kid)


def test_beyond_cfg_rows_are_the_methods_own_samples_on_the_same_seeds(rt):
    """Rows = method × w; each row equals generate() with that method on the same seeds; per-row stats are printed."""
    from core.guidance import APGParams, GuidanceOptions
    from core.images import grid_image

    img, fig, info = H.beyond_cfg(rt, ["CFG", "APG", "CFG++", "autoguidance"], 2, 0, 2, "1, 8", "0.5", 0.0, 2.5, -0.75, 3)
    assert "CFG++ is defined for DDIM only" in info and "**APG**: w=1: accuracy" in info and "clipped" in info
    assert {t.name for t in fig.data} == {"CFG", "APG", "CFG++", "autoguidance"}
    x, y = H.load_split("heldout", rt.card("digits").dataset)
    real = (rt.slot("digits").pipe.features(x)[1].argmax(1) == y.numpy())[y.numpy() == 2].mean()
    assert fig.layout.shapes[0].y0 == pytest.approx(100 * real)  # class 2's real held-out digits, the reference line
    m, guide = rt.slot("digits").pipe.model, rt.slot("digits").pipe.guide
    rows = [H.generate(m, [0, 1], [2, 2], [1.0, 8.0], SamplerConfig("ddim", 3))]
    rows.append(H.generate(m, [0, 1], [2, 2], [1.0, 8.0],
                           SamplerConfig("ddim", 3, opts=GuidanceOptions(method="apg", apg=APGParams()))))
    rows.append(H.generate(m, [0, 1], [2, 2], [0.5], SamplerConfig("ddim", 3, opts=GuidanceOptions(method="cfgpp"))))
    rows.append(H.generate(m, [0, 1], [2, 2], [1.0, 8.0],
                           SamplerConfig("ddim", 3, opts=GuidanceOptions(method="autoguidance")), guide_model=guide))
    want = grid_image(H._u8(torch.cat(rows)), 3, ["CFG w=1", "CFG w=8", "APG w=1", "APG w=8", "CFG++ scale=0.5",
                                                   "autoguidance w=1", "autoguidance w=8"])
    assert np.array_equal(np.asarray(img), np.asarray(want))


@pytest.mark.parametrize("args,phrase", [
    (([], 2, 0, 2, "1", "0.5", 0, 2.5, -0.75, 3), "tick at least one method"),
    ((["PAG"], 2, 0, 2, "1", "0.5", 0, 2.5, -0.75, 3), "unknown method 'PAG'"),
    ((["CFG++"], 2, 0, 2, "1", "1.5", 0, 2.5, -0.75, 3), "CFG++ scale must be between 0 and 1"),
    ((["APG"], 2, 0, 2, "1", "0.5", 2, 2.5, -0.75, 3), "APG η must be between 0 and 1"),
    ((["APG"], 2, 0, 2, "1", "0.5", 0, 2.5, 0.5, 3), "APG momentum β must be between -0.99 and 0"),
    ((["APG"], 2, 0, 2, "1", "0.5", 0, 2.5, -0.75, 3, "digits", "yes"), "APG clip x̂ must be true or false"),
])
def test_beyond_cfg_bad_input_is_a_clear_error(rt, args, phrase):
    with pytest.raises(gr.Error, match=phrase.replace("+", "\\+")):
        H.beyond_cfg(rt, *args)


def test_beyond_plane_streams_each_methods_curve(rt):
    ups = list(H.beyond_plane(rt, 10, 2, ["CFG", "APG"], 0.0, 2.5, -0.75))
    fig, status = ups[-1]
    names = [t.name for t in fig.data]
    assert any(n.startswith("CFG (live") for n in names) and any(n.startswith("APG (live") for n in names)
    assert any(n.startswith("CFG (shipped") for n in names)  # the shipped DDIM sweep, drawn dotted
    assert status.startswith("APG: N = 10 of 10")


@pytest.mark.parametrize("model", ["digits", "emoji"])
def test_shipped_sweeps_hold_every_method_on_the_fid_is_plane(rt, model):
    """Every method's shipped curve (N ≥ 2,000, DDIM T = 10) is on the plane; the colour model also draws accuracy vs
    saturation per method with the real data's level, a grey model says why that panel is empty."""
    plane, sat = H.precomputed_plane(rt, model)
    names = {t.name.split(" (shipped")[0] for t in plane.data}
    assert {"CFG", "APG", "APG (η=0, r=20, β=0)", "CFG++", "autoguidance"} <= names, names
    assert all(", N=2,000)" in t.name for t in plane.data), [t.name for t in plane.data]
    if model == "emoji":
        assert {"CFG", "APG", "CFG++", "autoguidance"} <= {t.name for t in sat.data}
        assert sat.layout.shapes and sat.layout.shapes[0].x0 == pytest.approx(0.295, abs=0.01)  # the data's saturation
        assert sat.layout.shapes[1].y0 == pytest.approx(73.9, abs=0.1)  # the data's class-balanced accuracy, in %
    else:
        assert not sat.data and "colour model" in sat.layout.annotations[0].text


def test_method_findings_report_best_fid_and_the_largest_ws_quality_against_cfg():
    """On two made-up method curves: the best FID and its w, the accuracy (and saturation) at the ends, CFG at the same w."""
    from demo import results

    def row(method, w, fid, acc, sat=""):
        return {"method": method, "w": w, "FID": fid, "accuracy": acc, "mean_saturation": sat}

    shipped = {"m": {"CFG": [row("cfg", 0, 9.0, 0.5, 0.2), row("cfg", 4, 3.0, 0.9, 0.4)],
                     "CFG++": [row("cfgpp", 0.2, 8.0, 0.3, 0.1), row("cfgpp", 1, 7.5, 0.6, 0.25)]}}
    assert results.method_findings(shipped, "CFG") == ("m: best FID 3 at w = 4; w = 0: accuracy 50.0 %, saturation 0.20; "
                                                     "w = 4: accuracy 90.0 %, saturation 0.40")
    assert results.method_findings(shipped, "CFG++") == ("m: best FID 7.5 at scale = 1 (CFG 3); scale = 0.2: accuracy 30.0 %, "
                                                       "saturation 0.10; scale = 1: accuracy 60.0 %, saturation 0.25")
    assert results.method_findings(shipped, "APG") == "not in the shipped sweeps"


def test_the_beyond_table_is_read_from_every_models_shipped_sweeps(rt):
    """The "measured here" column quotes the shipped CSVs (one source for each number), for every method and model."""
    from demo import results

    text = H.beyond_text(rt)
    rows = [line for line in text.splitlines() if line.startswith("| **")]
    assert len(rows) == 4 and not any("not in the shipped sweeps" in r for r in rows)
    for name in rt.names:
        cfg = results.shipped_method_rows(rt.card(name))["CFG"]
        best = min(cfg, key=lambda r: float(r["FID"]))
        assert f"{name}: best FID {float(best['FID']):.3g} at w = {float(best['w']):g}" in rows[0]
        assert all(f"{name}" in r for r in rows)


def test_plots_fit_in_a_cached_example():
    """Every saturation-lab figure of a maximal RGB request stays under the example cache's CSV field limit."""
    from demo import plots

    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (64, 32, 32, 3)).astype(np.uint8)
    ws = [float(w) for w in range(8)]
    stats = [{"mean_saturation": 0.1, "saturated_share": 0.1, "colourfulness": 10.0, "clipped_share": 0.1}] * 8
    figs = [plots.hue_saturation_figure({f"w = {w:g}": px for w in (0, 8)}),
            plots.histogram_figure(ws, rng.normal(size=(8, 64, 3, 32, 32)), rng.normal(size=(8, 64, 3, 32, 32))),
            plots.colour_figure(ws, stats, stats, stats[0])]
    assert all(len(f.to_json()) < plots.CACHE_FIELD_LIMIT for f in figs), [len(f.to_json()) for f in figs]


def test_truncation_text_quotes_the_selected_models_own_sweep(rt):
    """Every figure in the Truncation tab's text is read from the selected model's shipped sweep (issue #21)."""
    from demo import results

    for name in ("digits", "emoji"):
        text = H.truncation_text(rt, name)
        for sw in results.shipped_sweeps(rt.card(name)):
            w0 = next(r for r in sw.rows if results.is_cfg(r) and r["w"] == 0 and r["truncation"] is None
                      and r["temperature"] == 1)
            t2 = next(r for r in sw.rows if r["truncation"] == 2)
            assert f"w = 0: FID {H._fid(w0['FID'])} · truncation 2: {H._fid(t2['FID'])}" in text, (name, sw.name)
    assert "5.01" not in H.truncation_text(rt, "emoji")  # the digits model's w = 0 FID


def test_model_card_reads_the_runtime_and_polls_only_while_compiling():
    """Issue #21: the card said "compiling" on every page load. It reads the warm-up's state now, and the page keeps
    polling only while some model is still compiling."""
    from demo.runtime import Runtime

    rt = Runtime(device="cpu", compile=False)
    rt.load_all()  # compile off: each warm-up ends at once as "eager (CFG_COMPILE=0)"
    text, timer = H.model_card_status(rt, "digits")
    assert "Network: eager (CFG_COMPILE=0)" in text and timer.active is False
    rt.slot("emoji").warmup.state = "compiling"  # as while the compile child runs
    text, timer = H.model_card_status(rt, "digits")
    assert timer.active is True and "Network: eager" in text
    assert "Network: compiling" in H.model_card_status(rt, "emoji")[0]
    assert "Training: v-prediction, UNet (32, 64, 64), EMA weights at step 15,000" in H.model_card_status(rt, "emoji")[0]
    assert "Training: ε-prediction, UNet (16, 32, 64), 4,500 steps" in text  # the digits card


def test_inside_step_info_names_the_step_the_slider_shows(rt):
    """The info line and the slider agree on the step (0-based, 0 … T − 1), and the slider's range follows T."""
    for i in (0, 3, 5):
        _, _, info = H.inside_step(rt, 4, 0, 2.0, 6, "ddim", i)
        assert info.startswith(f"step i = {i} of 0…5:"), info
    assert H.step_range(6)["maximum"] == 5
    assert H.INSIDE_STEP <= H.INSIDE_STEPS - 1


def test_exact_lab_handler_draws_each_w_over_its_tilted_density(rt):
    """Issue #23's tab: per w, p_w's contours and the samples, and the lab's table; bad input is one clear error."""
    fig, table = H.toy_lab(rt, "rare-mode", 0, "0, 3", "CFG", 400, 32, "ddim")
    assert [t.type for t in fig.data] == ["contour", "contour", "scatter"] * 2  # p(x|c), p(x), the samples
    assert len(fig.data[2].x) == 400 and table.count("\n| ") == 2  # one row per w under the header
    rows = [l.split("|") for l in table.splitlines()[2:]]
    assert float(rows[0][3]) == 1.0 and float(rows[1][3]) == 0.5  # the rare mode loses its samples at w = 3
    for args, message in [(("nope", 0, "1", "CFG", 50, 8, "ddim"), "unknown preset"),
                          (("overlap", 2, "1", "CFG", 50, 8, "ddim"), "class must be between 0 and 1"),
                          (("overlap", 0, "2", "CFG++", 50, 8, "ddim"), "CFG\\+\\+'s scale must be in \\[0, 1\\]"),
                          (("overlap", 0, "0.5", "CFG++", 50, 8, "ancestral"), "CFG\\+\\+ is defined for DDIM only")]:
        with pytest.raises(gr.Error, match=message):
            H.toy_lab(rt, *args)


def test_exact_lab_slider_adds_its_w_after_the_list_on_the_same_seeds(rt):
    """The tab's w slider: its w is the last panel, after the values beside it (none, or up to 3); the same seeds, so
    the slider's panel equals the same w asked in the list."""
    fig, table = H.toy_lab(rt, "overlap", 0, "0, 1", "CFG", 100, 8, "ddim", False, 0.0, 2.5)
    assert [a.text for a in fig.layout.annotations] == ["w=0 (s=1)", "w=1 (s=2)", "w=2.5 (s=3.5)"]
    alone, _ = H.toy_lab(rt, "overlap", 0, "", "CFG", 100, 8, "ddim", False, 0.0, 2.5)
    listed, _ = H.toy_lab(rt, "overlap", 0, "2.5", "CFG", 100, 8, "ddim")
    assert len(alone.data) == 3 and list(alone.data[2].x) == list(fig.data[8].x) == list(listed.data[2].x)
    twice, _ = H.toy_lab(rt, "overlap", 0, "0, 2.5", "CFG", 100, 8, "ddim", False, 0.0, 2.5)
    assert len(twice.layout.annotations) == 2  # the slider's w is not drawn twice
    with pytest.raises(gr.Error, match="too many w values \\(4\\); at most 3"):
        H.toy_lab(rt, "overlap", 0, "0, 1, 2, 3", "CFG", 50, 8, "ddim", False, 0.0, 5)
    with pytest.raises(gr.Error, match="w must be between -1 and 20"):
        H.toy_lab(rt, "overlap", 0, "0", "CFG", 50, 8, "ddim", False, 0.0, 21)


def test_exact_lab_curves_cover_every_method_on_the_same_seeds(rt):
    from core.guidance import METHOD_TABLE

    streamed = list(H.toy_curves(rt, "overlap", 0, 100, 16, "ddim"))  # cold: an update per half of each method's w
    shown = [{t.name for t in f.data} - {"two exact draws"} for f, _ in streamed]
    assert [len(names) for names in shown] == [k for k in range(1, len(METHOD_TABLE) + 1) for _ in range(2)]
    assert "measuring CFG" in streamed[0][1] and "measuring APG" in streamed[1][1] and "measuring" not in streamed[-1][1]
    first, whole = (next(t for t in f.data if t.name == "CFG") for f, _ in (streamed[0], streamed[-1]))
    assert len(first.x) == 4 and list(whole.x) == list(H.TOY_WS) and list(whole.y[:4]) == list(first.y)
    fig, info = streamed[-1]
    names = {t.name for t in fig.data}
    assert names == {m.label for m in METHOD_TABLE} | {"two exact draws"}
    per_w = [m for m in METHOD_TABLE if m.weight == "w"]  # the distance to p_w: for the methods whose weight is a w
    assert len(fig.data) == 4 * len(METHOD_TABLE) + len(per_w) + 1
    tilted = {t.name: t for t in fig.data if t.xaxis == "x5"}
    assert set(tilted) == {m.label for m in per_w} | {"two exact draws"}
    assert tilted["two exact draws"].y[3] < tilted["CFG"].y[3]  # at w = 2, CFG is farther from p_w than the noise floor
    fid = next(t for t in fig.data if t.name == "CFG" and t.xaxis == "x")  # the fidelity panel
    assert fid.y[0] < fid.y[2]  # fidelity rises from w = 0 to w = 1
    hits = rt.toy_results.hits
    (again, info2), = H.toy_curves(rt, "overlap", 0, 100, 16, "ddim")  # the same request: measured once, one update
    assert rt.toy_results.hits == hits + 2 * len(METHOD_TABLE) and again.to_json() == fig.to_json()
    *_, (fig, info) = H.toy_curves(rt, "overlap", 0, 100, 16, "ancestral")  # CFG++ is DDIM-only: left out, said so
    assert {t.name for t in fig.data} == {m.label for m in METHOD_TABLE if not m.renoise_uncond} | {"two exact draws"}
    assert "CFG++ left out: it is defined for DDIM only" in info


def test_exact_lab_field_points_towards_the_class_and_paths_end_on_the_samples(rt):
    """The arrows are σ∇log p^i(c|z) = −(ε*(z,c) − ε*(z)): on `separated`, at a λ where the classes are apart, they
    point towards class c's mean; each path ends on the seed's sample."""
    from core.sampling import SamplerConfig
    from core.toy import PRESETS, ExactModel

    fig, info = H.toy_field(rt, "separated", 0, 3.0, 20, 24, "ddim")
    arrows = next(t for t in fig.data if t.name == "σ∇log p^i(c|z)")
    xs, ys = np.array(arrows.x, dtype=float), np.array(arrows.y, dtype=float)
    tail, head = np.stack([xs[0::3], ys[0::3]], 1), np.stack([xs[1::3], ys[1::3]], 1)
    target = np.array(PRESETS["separated"].means[0])
    towards = ((head - tail) * (target - tail)).sum(1) > 0
    assert towards.mean() > 0.8, towards.mean()
    x = H.generate(ExactModel(PRESETS["separated"]).eval(), list(range(12)), [0] * 12, [3.0],
                   SamplerConfig("ddim", 24, clip_x=False))[0].reshape(-1, 2).numpy()
    guided = [t for t in fig.data if t.name and t.name.startswith("w = 3") and t.mode == "lines"]
    assert len(guided) == 12 and np.allclose([guided[0].x[-1], guided[0].y[-1]], x[0], atol=1e-6)
    with pytest.raises(gr.Error, match="step must be between 0 and 23"):
        H.toy_field(rt, "separated", 0, 3.0, 24, 24, "ddim")


def test_exact_lab_shows_p_w_and_truncation_on_request(rt):
    """p_w's contours and exact draws on request; truncated initial noise on the same seeds shrinks DDIM's spread."""
    fig, _ = H.toy_lab(rt, "overlap", 0, "0", "CFG", 300, 16, "ddim", True, 0.3)
    names = [t.name for t in fig.data]
    assert names == ["p_w(x|c)", "p(x|c)", "p(x)", "CFG samples", "exact draws of p_w", "truncated noise |z| ≤ 0.3"]
    spread = {t.name: np.std(np.array(t.x, dtype=float)) for t in fig.data if t.type == "scatter"}
    assert spread["truncated noise |z| ≤ 0.3"] < 0.5 * spread["CFG samples"]
    with pytest.raises(gr.Error, match="truncation threshold"):
        H.toy_lab(rt, "overlap", 0, "0", "CFG", 50, 8, "ddim", False, -1)


@pytest.mark.parametrize("name", ["digits", "emoji"])
def test_trade_off_labels_never_pile_up(rt, name):
    """Issue #21: the FID-vs-IS point labels piled up. Every label shown keeps its distance from every other one (as a
    share of the axis ranges, FID on its log axis), and the hover text still names every point."""
    fig = H.precomputed_tradeoff(rt, name)
    pts = [(x, np.log10(y), t) for tr in fig.data for x, y, t in zip(tr.x, tr.y, tr.text) if t]
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    all_x = np.concatenate([np.asarray(tr.x, float) for tr in fig.data])
    all_y = np.log10(np.concatenate([np.asarray(tr.y, float) for tr in fig.data]))
    sx, sy = np.ptp(all_x), np.ptp(all_y)
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            assert abs(xs[i] - xs[j]) / sx >= 0.12 or abs(ys[i] - ys[j]) / sy >= 0.06, (pts[i], pts[j])
    assert all(len(tr.hovertext) == len(tr.x) and all(tr.hovertext) for tr in fig.data)
