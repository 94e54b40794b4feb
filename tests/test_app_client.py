"""The real app on 127.0.0.1, called through gradio_client: every api_name, streaming, errors, determinism (#4, #6)."""
import hashlib
import urllib.error
import urllib.request

import pytest


pytestmark = pytest.mark.timeout(600)


def _png_bytes(client_url: str, image: dict) -> bytes:
    url = image.get("url") or f"{client_url}/gradio_api/file={image['path']}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_every_api_name_is_public(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {"/guidance_grid", "/slider_row", "/s_of_w", "/scrub_strip", "/inside_step", "/inside_step_slider", "/step_range",
                "/trajectory_animation", "/truncation_compare", "/live_tradeoff", "/classifier_vs_cfg", "/saturation_lab",
                "/live_curves", "/model_card", "/precomputed_tradeoff", "/initial_curves", "/beyond_cfg", "/beyond_plane",
                "/method_choices", "/precomputed_plane"}
    assert expected <= names


def test_model_selector_through_the_api(client):
    """Every endpoint takes the model's name as its last input, defaulting to the default model."""
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/guidance_grid", "/slider_row", "/scrub_strip", "/inside_step", "/trajectory_animation",
                 "/truncation_compare", "/live_tradeoff", "/classifier_vs_cfg", "/saturation_lab", "/live_curves"):
        last = api[name]["parameters"][-1]
        assert last["parameter_name"] == "model" and last["parameter_default"] == "digits", (name, last)
    assert "MNIST digits" in client.predict("digits", api_name="/model_card")
    a, info_a = client.predict(1.0, 3, 0, "ddim", 3, api_name="/slider_row")
    b, info_b = client.predict(1.0, 3, 0, "ddim", 3, "digits", api_name="/slider_row")
    assert "NFE 6" in info_a and "NFE 6" in info_b


def test_call_every_endpoint(client, app_url):
    img, info = client.predict("single class", 3, "0, 1", 2, 0, "ddim", 0.3, 3, api_name="/guidance_grid")
    assert _png_bytes(app_url, img)[:8] == b"\x89PNG\r\n\x1a\n" and "NFE" in info
    img, info = client.predict(1.0, 3, 0, "ddim", 3, api_name="/slider_row")
    assert "s = 1+w = 2" in info
    assert "s = 1 + w = 3" in client.predict(2.0, api_name="/s_of_w")
    html, info = client.predict(3, 0, "ddim", 2, api_name="/scrub_strip")
    assert "scrub-view" in html
    client.predict(4, api_name="/step_range")  # the step slider follows T
    for api in ("/inside_step", "/inside_step_slider"):
        img, plot, info = client.predict(4, 0, 2.0, 4, "ddim", 1, api_name=api)
        assert "λ =" in info and plot is not None
    anim, info = client.predict(1, 0, "0, 3", 3, "ddim", api_name="/trajectory_animation")
    assert anim
    img, info = client.predict(2, 0, 2, "2, 0.04", 0.6, "1", 3, "ancestral", api_name="/truncation_compare")
    assert "same seeds" in info
    plot, status = client.predict(10, 2, "ddim", api_name="/live_tradeoff")
    assert status.startswith("N = 10")
    img, plot, info = client.predict(8, 0, 2, "1, 3", 3, "ddim", api_name="/classifier_vs_cfg")
    assert "classifier guidance" in info
    img, hist, curve, info, colour, scatter = client.predict(0, 0, 2, "0, 4", True, 0.5, True, 3, "ddim",
                                                             api_name="/saturation_lab")
    assert "saturated" in info


def test_every_endpoint_with_the_colour_model(client, app_url):
    """model = emoji through every endpoint: colour images, class names, its own precomputed sweep."""
    import io

    import numpy as np
    from PIL import Image

    assert "Emoji" in client.predict("emoji", api_name="/model_card")
    img, info = client.predict("single class", 3, "0, 3", 2, 0, "ddim", 0.3, 3, "emoji", api_name="/guidance_grid")
    rgb = np.asarray(Image.open(io.BytesIO(_png_bytes(app_url, img))).convert("RGB")).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).mean() > 5  # in colour
    img, info = client.predict(3.0, 8, 0, "ddim", 3, "emoji", api_name="/slider_row")
    assert "NFE 6" in info
    html, info = client.predict(2, 0, "ddim", 2, "emoji", api_name="/scrub_strip")
    assert "scrub-view" in html
    for api in ("/inside_step", "/inside_step_slider"):
        img, plot, info = client.predict(1, 0, 2.0, 4, "ddim", 1, "emoji", api_name=api)
        assert "λ =" in info
    anim, info = client.predict(1, 0, "0, 3", 3, "ddim", "emoji", api_name="/trajectory_animation")
    assert anim
    img, info = client.predict(2, 0, 2, "2, 0.04", 0.6, "1", 3, "ancestral", "emoji", api_name="/truncation_compare")
    assert "same seeds" in info
    plot, status = client.predict(10, 2, "ddim", "emoji", api_name="/live_tradeoff")
    assert status.startswith("N = 10")
    img, plot, info = client.predict(8, 0, 2, "1, 3", 3, "ddim", "emoji", api_name="/classifier_vs_cfg")
    assert "classifier guidance" in info
    img, hist, curve, info, colour, scatter = client.predict(0, 0, 2, "0, 8", False, 0.7, False, 3, "ddim", "emoji",
                                                             api_name="/saturation_lab")
    assert "saturated" in info
    img, plot, info = client.predict(["CFG", "APG"], 0, 0, 2, "8", "0.6", 0.0, 2.5, -0.75, 3, "emoji",
                                     api_name="/beyond_cfg")
    assert "saturation" in info
    job = client.submit("0, 2", 20, 3, "ddim", "emoji", api_name="/live_curves")
    assert list(job)[-1][1].startswith("N = 20")
    assert client.predict("ddim", 10, "emoji", api_name="/initial_curves") is not None


def test_beyond_cfg_endpoints(client, app_url):
    """The Beyond CFG tab: method × w rows on the same seeds, the method boxes follow the model, the live plane."""
    img, plot, info = client.predict(["CFG", "APG", "CFG++"], 3, 0, 2, "1, 8", "0.5", 0.0, 2.5, -0.75, 3,
                                     api_name="/beyond_cfg")
    assert _png_bytes(app_url, img)[:8] == b"\x89PNG\r\n\x1a\n" and "**CFG++**: scale=0.5" in info
    img, plot, info = client.predict(["APG", "autoguidance"], 0, 0, 2, "1", "0.5", 0.0, 20.0, 0.0, 3, "emoji", True,
                                     api_name="/beyond_cfg")  # APG with Δ from clipped x̂, and the weaker emoji model
    assert "**autoguidance**: w=1: accuracy" in info and "**APG**: w=1: accuracy" in info
    update = client.predict("emoji", ["CFG", "autoguidance"], api_name="/method_choices")
    assert "autoguidance" in str(update)
    plane, saturation = client.predict("emoji", api_name="/precomputed_plane")
    assert plane is not None and saturation is not None
    job = client.submit(10, 2, ["CFG", "APG"], 0.0, 2.5, -0.75, api_name="/beyond_plane")
    assert list(job)[-1][1].startswith("APG: N = 10 of 10")


def test_streaming_curves_yield_several_updates(client):
    job = client.submit("0, 2", 20, 3, "ddim", api_name="/live_curves")
    outs = list(job)
    assert len(outs) >= 2
    assert outs[0][1].startswith("N = 10") and outs[-1][1].startswith("N = 20")


BAD = [
    # (endpoint, arguments, the phrase the message must contain: it names the parameter that was wrong)
    # JSON has no NaN/inf literals: a client sends them as strings, which the server must refuse clearly.
    ("/slider_row", ("NaN", 3, 0, "ddim", 3), "w must be a finite number"),
    ("/slider_row", ("inf", 3, 0, "ddim", 3), "w must be a finite number"),
    ("/slider_row", ("-inf", 3, 0, "ddim", 3), "w must be a finite number"),
    ("/slider_row", (-5, 3, 0, "ddim", 3), "w must be between -1 and 20, got -5"),
    ("/slider_row", (1e6, 3, 0, "ddim", 3), "w must be between -1 and 20, got 1e+06"),
    ("/slider_row", ("abc", 3, 0, "ddim", 3), "w must be a number, got 'abc'"),
    ("/slider_row", (1, 3, 0, "ddim", 0), "steps must be between 1 and 256, got 0"),
    ("/slider_row", (1, 3, 0, "ddim", -1), "steps must be between 1 and 256, got -1"),
    ("/slider_row", (1, 3, 0, "ddim", 10**6), "steps must be between 1 and 256, got 1000000"),
    ("/slider_row", (1, 3, 0, "ddim", 2.5), "steps must be a whole number, got 2.5"),
    ("/slider_row", (1, 3, -1, "ddim", 3), "seed must be between 0 and 2147483647, got -1"),
    ("/slider_row", (1, 3, 2**64, "ddim", 3), "seed must be between 0 and 2147483647"),
    ("/slider_row", (1, 3, "x", "ddim", 3), "seed must be a number, got 'x'"),
    ("/slider_row", (1, -1, 0, "ddim", 3), "class must be between 0 and 9, got -1"),
    ("/slider_row", (1, 10, 0, "ddim", 3), "class must be between 0 and 9, got 10"),
    ("/slider_row", (1, 3.5, 0, "ddim", 3), "class must be a whole number, got 3.5"),
    ("/slider_row", (1, "seven", 0, "ddim", 3), "class must be a number, got 'seven'"),
    ("/slider_row", (1, 3, 0, "no-such-sampler", 3), "unknown sampler 'no-such-sampler'"),
    ("/slider_row", (1, 3, 0, "ddim", 3, "cifar"), "unknown model 'cifar': choose one of digits"),
    ("/model_card", ("../digits",), "unknown model '../digits'"),
    ("/s_of_w", ("abc",), "w must be a number"),
    ("/step_range", (0,), "steps must be between 1 and 256"),
    ("/guidance_grid", ("single class", 3, "0, 1", 0, 0, "ddim", 0.3, 3), "number of seeds must be between 1 and 64, got 0"),
    ("/guidance_grid", ("single class", 3, "0, 1", 10**5, 0, "ddim", 0.3, 3), "number of seeds must be between 1 and 64"),
    ("/guidance_grid", ("single class", 3, "", 2, 0, "ddim", 0.3, 3), "the w list is empty"),
    ("/guidance_grid", ("single class", 3, ",".join(["1"] * 1000), 2, 0, "ddim", 0.3, 3), "too many w values (1000)"),
    ("/guidance_grid", ("single class", 3, "0, 1", 2, 0, "ddim", 1.5, 3), "v must be between 0 and 1, got 1.5"),
    ("/guidance_grid", ("some classes", 3, "0, 1", 2, 0, "ddim", 0.3, 3), "unknown mode 'some classes'"),
    ("/truncation_compare", (2, 0, 2, "0", 0.6, "1", 3, "ddim"), "truncation threshold must be > 0, got 0"),
    ("/truncation_compare", (2, 0, 2, "-1", 0.6, "1", 3, "ddim"), "truncation threshold must be > 0, got -1"),
    ("/truncation_compare", (2, 0, 2, "1", 1.5, "1", 3, "ddim"), "noise temperature must be between 0 and 1, got 1.5"),
    ("/saturation_lab", (0, 0, 2, "0, 4", False, 2.0, False, 3, "ddim"), "CFG-rescale φ must be between 0 and 1, got 2"),
    ("/inside_step", (4, 0, 2.0, 4, "ddim", 9), "step must be between 0 and 3, got 9"),
    ("/live_curves", ("0, 1", 0, 3, "ddim"), "N (samples per w) must be between 10 and 2000, got 0"),
    ("/live_curves", ("0, 1", 10**7, 3, "ddim"), "N (samples per w) must be between 10 and 2000, got 10000000"),
    ("/beyond_cfg", ([], 3, 0, 2, "1", "0.5", 0, 2.5, -0.75, 3), "tick at least one method"),
    ("/beyond_cfg", (["CFG++"], 3, 0, 2, "1", "2", 0, 2.5, -0.75, 3), "CFG++ scale must be between 0 and 1, got 2"),
    ("/beyond_cfg", (["APG"], 3, 0, 2, "1", "0.5", 0, -3, -0.75, 3), "APG norm bound r (0 = none) must be between 0"),
]


@pytest.mark.parametrize("api,args,phrase", BAD, ids=[f"{a}:{b!r}" for a, b, _ in BAD])
def test_bad_input_gives_clear_error_and_app_keeps_answering(client, app_url, api, args, phrase):
    from gradio_client import Client

    # A fresh session: /step_range re-creates the step slider inside a session that called it, and that copy has
    # Gradio's own range check ("Value 9 is greater than maximum value 3"), which does not name the parameter.
    fresh = Client(app_url, analytics_enabled=False, download_files=False, verbose=False)
    with pytest.raises(Exception) as e:
        fresh.predict(*args, api_name=api)
    msg = str(e.value)
    assert phrase in msg and "Traceback" not in msg and len(msg) < 400, msg
    img, info = client.predict(0.0, 3, 0, "ddim", 2, api_name="/slider_row")
    assert "NFE 2" in info


def test_same_request_twice_gives_same_png_bytes(client, app_url):
    a, _ = client.predict(1.0, 5, 11, "ancestral", 3, api_name="/slider_row")
    b, _ = client.predict(1.0, 5, 11, "ancestral", 3, api_name="/slider_row")
    assert hashlib.sha256(_png_bytes(app_url, a)).digest() == hashlib.sha256(_png_bytes(app_url, b)).digest()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_user_paths_are_not_served(app_url):
    """Only assets/ is served: project files, system files and ../ traversal out of assets/ are refused."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    status, body = _get(f"{app_url}/gradio_api/file={root / 'assets' / 'digits_sweep_ancestral_T64.csv'}")
    assert status == 200 and body.startswith(b"label,w,s,")  # the one allowed folder
    for path in ("/etc/passwd", str(root / "core" / "unet.py"), "core/unet.py", str(root / "app.py"),
                 f"{root / 'assets'}/../core/unet.py", f"{root / 'assets'}/..%2Fcore%2Funet.py", "assets/../app.py"):
        for prefix in ("/gradio_api/file=", "/file="):
            status, body = _get(app_url + prefix + path)
            assert status in (403, 404), (prefix + path, status)
            assert b"root:" not in body and b"import" not in body


def test_the_inside_step_slider_starts_within_the_default_t(app_url):
    """Issue #21: the step slider offered 0–63 while T = 16; its initial range is 0 … T − 1 of the initial T."""
    import json

    with urllib.request.urlopen(f"{app_url}/config", timeout=30) as r:
        config = json.load(r)
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c.get("props")}
    step = props["inside-step"]
    steps_t = next(c["props"] for c in config["components"]
                   if c.get("props", {}).get("label") == "steps T" and c["props"].get("maximum") == 64)
    assert step["maximum"] == steps_t["value"] - 1 and 0 <= step["value"] <= step["maximum"]


def test_the_exact_lab_through_the_api(client):
    """Issue #23's endpoints answer through gradio_client; bad input is one clear error."""
    from gradio_client.exceptions import AppError

    plot, table = client.predict("overlap", 0, "0, 3", "CFG", 200, 16, "ddim", api_name="/toy_lab")
    assert plot is not None and "mode coverage" in table
    plot, table = client.predict("overlap", 0, "0", "CFG", 200, 16, "ddim", False, 0, 3, api_name="/toy_lab_w")
    assert table.count("\n| ") == 2 and "| 3 |" in table  # a row for w = 0, then one for the slider's w = 3
    plot, info = client.predict("separated", 1, 50, 8, "ddim", api_name="/toy_curves")
    assert "4 methods" in info
    with pytest.raises(AppError, match="unknown preset"):
        client.predict("nope", 0, "1", "CFG", 50, 8, "ddim", api_name="/toy_lab")
