"""The real app on 127.0.0.1, called through gradio_client: every api_name, streaming, errors, determinism (#4, #6)."""
import hashlib
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
                "/live_curves"}
    assert expected <= names


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
    img, hist, curve, info = client.predict(0, 0, 2, "0, 4", True, 0.5, True, 3, "ddim", api_name="/saturation_lab")
    assert "saturated" in info


def test_streaming_curves_yield_several_updates(client):
    job = client.submit("0, 2", 20, 3, "ddim", api_name="/live_curves")
    outs = list(job)
    assert len(outs) >= 2
    assert outs[0][1].startswith("N = 10") and outs[-1][1].startswith("N = 20")


BAD = [
    # JSON has no NaN/inf literals: a client sends them as strings, which the server must refuse clearly.
    ("/slider_row", ("NaN", 3, 0, "ddim", 3)),
    ("/slider_row", ("inf", 3, 0, "ddim", 3)),
    ("/slider_row", ("-inf", 3, 0, "ddim", 3)),
    ("/slider_row", (-5, 3, 0, "ddim", 3)),
    ("/slider_row", (1e6, 3, 0, "ddim", 3)),
    ("/slider_row", ("abc", 3, 0, "ddim", 3)),
    ("/slider_row", (1, 3, 0, "ddim", 0)),
    ("/slider_row", (1, 3, 0, "ddim", -1)),
    ("/slider_row", (1, 3, 0, "ddim", 10**6)),
    ("/slider_row", (1, 3, 0, "ddim", 2.5)),
    ("/slider_row", (1, 3, -1, "ddim", 3)),
    ("/slider_row", (1, 3, 2**64, "ddim", 3)),
    ("/slider_row", (1, 3, "x", "ddim", 3)),
    ("/slider_row", (1, -1, 0, "ddim", 3)),
    ("/slider_row", (1, 10, 0, "ddim", 3)),
    ("/slider_row", (1, 3.5, 0, "ddim", 3)),
    ("/slider_row", (1, "seven", 0, "ddim", 3)),
    ("/slider_row", (1, 3, 0, "no-such-sampler", 3)),
    ("/guidance_grid", ("single class", 3, "0, 1", 0, 0, "ddim", 0.3, 3)),
    ("/guidance_grid", ("single class", 3, "0, 1", 10**5, 0, "ddim", 0.3, 3)),
    ("/guidance_grid", ("single class", 3, "", 2, 0, "ddim", 0.3, 3)),
    ("/guidance_grid", ("single class", 3, ",".join(["1"] * 1000), 2, 0, "ddim", 0.3, 3)),
    ("/truncation_compare", (2, 0, 2, "0", 0.6, "1", 3, "ddim")),
    ("/truncation_compare", (2, 0, 2, "-1", 0.6, "1", 3, "ddim")),
    ("/live_curves", ("0, 1", 0, 3, "ddim")),
    ("/live_curves", ("0, 1", 10**7, 3, "ddim")),
]


@pytest.mark.parametrize("api,args", BAD, ids=[f"{a}:{b!r}" for a, b in BAD])
def test_bad_input_gives_clear_error_and_app_keeps_answering(client, api, args):
    with pytest.raises(Exception) as e:
        client.predict(*args, api_name=api)
    msg = str(e.value)
    assert "Traceback" not in msg and len(msg) < 400
    keys = ("must be", "empty", "too many", "exceeds", "unknown", "between", "number", "Expected", "less than", "greater than",
            "not in the list of choices")
    assert any(k in msg for k in keys), msg
    img, info = client.predict(0.0, 3, 0, "ddim", 2, api_name="/slider_row")
    assert "NFE 2" in info


def test_same_request_twice_gives_same_png_bytes(client, app_url):
    a, _ = client.predict(1.0, 5, 11, "ancestral", 3, api_name="/slider_row")
    b, _ = client.predict(1.0, 5, 11, "ancestral", 3, api_name="/slider_row")
    assert hashlib.sha256(_png_bytes(app_url, a)).digest() == hashlib.sha256(_png_bytes(app_url, b)).digest()


def test_user_paths_are_not_served(app_url):
    for path in ("/gradio_api/file=/etc/passwd", "/gradio_api/file=core/unet.py", "/file=/etc/passwd"):
        try:
            with urllib.request.urlopen(app_url + path, timeout=10) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, b""
        assert status >= 400 or b"root:" not in body
