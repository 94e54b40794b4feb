"""A real headless Chromium (Debian's, via Playwright) loads the app, generates a grid and checks the image (#4)."""
import io
import shutil
import time

import numpy as np
import pytest
from PIL import Image


pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_generate_grid_in_a_real_browser(app_url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(app_url, timeout=60_000)
        # The model selector: every tab follows it; its card names the data and the licence.
        expect(page.locator("#model-select")).to_be_visible(timeout=30_000)
        expect(page.locator("#model-select input")).to_have_value("digits")
        expect(page.locator("#model-card")).to_contain_text("MNIST digits")
        page.locator("#model-select input").click()
        page.get_by_role("option", name="digits").click()
        expect(page.locator("#model-card")).to_contain_text("Licence")
        # All eight tabs fit in the tab bar at this width (none hidden in an overflow menu).
        for name in ["Guidance sweep", "Inside one step", "Truncation", "Classifier guidance", "Saturation lab",
                     "FID / IS curves", "Beyond CFG", "The idea"]:
            expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=10_000)
        page.get_by_role("tab", name="Guidance sweep").click()
        page.locator("#generate-grid").click()
        img = page.locator("#grid-image img")
        expect(img).to_be_visible(timeout=90_000)
        png = img.screenshot()
        a = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
        assert a.shape[0] > 100 and a.shape[1] > 100
        assert a.std() > 20, "the generated grid looks blank"
        info = page.locator("#grid-info").inner_text()
        assert "NFE" in info
        # Scrubbing: build the strip, then move the slider; the frame changes in the browser with no server call.
        page.get_by_role("button", name="Build scrub strip (29 w values, one batched run)").click()
        view = page.locator("#scrub-view")
        expect(view).to_be_visible(timeout=120_000)
        before = view.evaluate("e => e.style.backgroundPosition")
        page.locator("#w-slider input[type=range]").evaluate(
            "e => { e.value = '3'; e.dispatchEvent(new Event('input', {bubbles: true})); }")
        expect(page.locator("#scrub-label")).to_contain_text("w = 3", timeout=10_000)
        assert view.evaluate("e => e.style.backgroundPosition") != before
        browser.close()


PRESETS = [  # (tab, gr.Examples elem_id, number of presets, the output image it fills)
    ("Guidance sweep", "preset-figure3", 2, "grid-image"),
    ("Truncation", "preset-truncation", 1, "truncation-image"),
    ("Saturation lab", "preset-saturation", 1, "saturation-image"),
    ("Guidance sweep", "preset-figure4", 1, "grid-image"),  # the colour model's presets (issue #12)
    ("Saturation lab", "preset-colour-saturation", 1, "saturation-image"),
    ("Beyond CFG", "preset-beyond", 3, "beyond-image"),  # "w = 8: CFG vs APG (and CFG++)": digits, emoji, tuned APG
]


def test_every_preset_runs_and_is_cached(app_url):
    """Clicking each gr.Examples preset fills its output in the browser and writes its lazy cache."""
    from playwright.sync_api import expect, sync_playwright

    from conftest import EXAMPLES_CACHE

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(app_url, timeout=60_000)
        for tab, elem_id, count, out_id in PRESETS:
            page.get_by_role("tab", name=tab).click()
            for i in range(count):
                before = {p for p in EXAMPLES_CACHE.rglob("*") if p.is_file()}
                page.locator(f"#{elem_id} tbody tr").nth(i).click()
                img = page.locator(f"#{out_id} img")
                expect(img).to_be_visible(timeout=120_000)
                deadline = time.time() + 120
                while time.time() < deadline and {p for p in EXAMPLES_CACHE.rglob("*") if p.is_file()} == before:
                    time.sleep(0.5)
                assert {p for p in EXAMPLES_CACHE.rglob("*") if p.is_file()} - before, f"{elem_id}[{i}] was not cached"
                a = np.asarray(Image.open(io.BytesIO(img.screenshot())).convert("RGB"), dtype=np.float64)
                assert a.std() > 20, f"{elem_id}[{i}] shows a blank image"
                if "figure4" in elem_id:  # the colour model's grid is in colour: the channels differ
                    assert np.abs(a[..., 0] - a[..., 2]).mean() > 5, "the colour grid has no colour"
        browser.close()
