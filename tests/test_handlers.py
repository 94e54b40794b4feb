"""Handler unit tests: shapes, labels, same-seed rows and clear errors, without a browser (issue #4)."""
import numpy as np
import gradio as gr
import pytest
import torch

from demo import handlers as H


def _arr(img):
    return np.asarray(img.convert("L"))


def test_guidance_grid_shape_and_same_seed_rows():
    img, info = H.guidance_grid("single class", 3, "0, 1", 2, 0, "ddim", 0.3, 4)
    a = _arr(img)
    assert a.shape[1] > 2 * 28 * 3 and a.shape[0] >= 2 * 28 * 3 and a.std() > 20
    assert "NFE 8" in info and "4 samples" in info
    # The row of seed 1 at w = 1 equals the single-sample run at w = 1 for seed 1.
    x_grid = H._sample([0, 1], [3, 3], [0.0, 1.0], 4, "ddim")
    x_one = H._sample([1], [3], [1.0], 4, "ddim")
    assert torch.equal(x_grid[1, 1], x_one[0, 0])


def test_random_classes_mode_depends_only_on_seed():
    assert H.class_labels("random classes", 0, [5, 6])[0] == H.class_labels("random classes", 0, [9, 5])[1]
    assert H.class_labels("single class", 4, [1, 2, 3]) == [4, 4, 4]


def test_slider_row_and_scrub_strip_agree():
    img, info = H.slider_row(1.0, 3, 0, "ddim", 3)
    assert "s = 1+w = 2" in info and _arr(img).std() > 20
    html, sinfo = H.scrub_strip(3, 0, "ddim", 3, progress=lambda *a, **k: None)
    assert 'id="scrub-view"' in html and "data:image/png;base64," in html and "scrub strip ready" in sinfo


def test_inside_step_shows_six_panels_and_the_extrapolation():
    img, fig, info = H.inside_step(4, 0, 2.0, 6, "ddim", 3)
    assert _arr(img).shape[1] >= 6 * 28 * 5
    assert "λ =" in info and "σ_λ" in info
    names = [t.name for t in fig.data if t.name]
    assert any("ε̃" in n for n in names) and any("ε(z,c)" in n for n in names)


def test_trajectory_animation_is_animated_webp():
    from PIL import Image

    path, info = H.trajectory_animation(1, 0, "0, 3", 6, "ddim")
    im = Image.open(path)
    assert im.format == "WEBP" and getattr(im, "n_frames", 1) >= 6


def test_truncation_classifier_and_saturation_tabs():
    img, info = H.truncation_compare(2, 0, 2, "2, 0.04", 0.6, "1", 3, "ancestral")
    assert _arr(img).shape[0] >= 4 * 28 * 3  # 2 truncations + temperature + 1 CFG row
    img, fig, info = H.classifier_vs_cfg(8, 0, 2, "1, 10", 3, "ddim")
    assert len(fig.data) == 2 and len(fig.data[0].y) == 6
    img, hist, curve, info = H.saturation_lab(0, 0, 2, "0, 8", True, 0.0, False, 4, "ddim")
    assert len(curve.data) == 2 and "saturated" in info


def test_live_curves_stream_grows():
    gen = H.live_curves("0, 2", 20, 3, "ddim", progress=lambda *a, **k: None)
    statuses = [s for _, s, _ in gen]
    assert len(statuses) == 2 and statuses[0].startswith("N = 10") and statuses[-1].startswith("N = 20")


def test_live_tradeoff_streams_both_families():
    outs = list(H.live_tradeoff(10, 2, "ddim", progress=lambda *a, **k: None))
    fig, status = outs[-1]
    assert status.startswith("N = 10")
    names = {tr.name for tr in fig.data}
    assert {"CFG", "truncation", "temperature"} <= names


@pytest.mark.parametrize("call,match", [
    (lambda: H.slider_row(float("nan"), 3, 0, "ddim", 4), "finite"),
    (lambda: H.slider_row(25, 3, 0, "ddim", 4), "between -1 and 20"),
    (lambda: H.slider_row("abc", 3, 0, "ddim", 4), "number"),
    (lambda: H.slider_row(1, 10, 0, "ddim", 4), "class"),
    (lambda: H.slider_row(1, 3.5, 0, "ddim", 4), "whole number"),
    (lambda: H.slider_row(1, 3, -1, "ddim", 4), "seed"),
    (lambda: H.slider_row(1, 3, 0, "euler", 4), "unknown sampler"),
    (lambda: H.slider_row(1, 3, 0, "ddim", 0), "steps"),
    (lambda: H.guidance_grid("single class", 3, "", 2, 0, "ddim", 0.3, 4), "empty"),
    (lambda: H.guidance_grid("single class", 3, ",".join(["1"] * 1000), 2, 0, "ddim", 0.3, 4), "too many"),
    (lambda: H.guidance_grid("single class", 3, "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", 64, 0, "ddim", 0.3, 4), "cap"),
    (lambda: H.truncation_compare(2, 0, 2, "0", 0.6, "1", 3, "ddim"), "threshold"),
    (lambda: next(H.live_curves("0", 10**7, 4, "ddim")), "N"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(gr.Error, match=match):
        call()
