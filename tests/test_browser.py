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
        # All nine tabs fit in the tab bar at this width (none hidden in an overflow menu).
        for name in ["Guidance sweep", "Inside one step", "Truncation", "Classifier guidance", "Saturation lab",
                     "FID / IS curves", "Beyond CFG", "Exact 2-D lab", "The idea"]:
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
                page.locator(f"#{elem_id} button.gallery-item").nth(i).click()
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


def _boxes_overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


TABS = ["Guidance sweep", "Inside one step", "Truncation", "Classifier guidance", "Saturation lab", "FID / IS curves",
        "Beyond CFG", "Exact 2-D lab", "The idea"]


@pytest.mark.parametrize("width", [390, 1400])
def test_layout_on_a_phone_and_a_desktop(app_url, tmp_path, width):
    """Issue #21: every tab one tap away, grid labels readable (≥ 10 px on a phone, ≥ 12 px on a desktop) with nothing
    over the samples, the model card at full width on a phone, and chart titles that do not overlap."""
    from playwright.sync_api import expect, sync_playwright

    from core.images import LABEL_PX

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--disable-gpu", "--no-first-run",
                                                                   "--disable-background-networking"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(app_url, timeout=60_000)
        expect(page.locator("#model-card")).to_be_visible(timeout=30_000)
        # The card read the runtime when the page loaded: the warm-ups are over (app_url waited for them).
        expect(page.locator("#model-card")).not_to_contain_text("compiling", timeout=10_000)
        for name in TABS:
            expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=10_000)
        if width < 640:
            card, body = page.locator("#model-card").bounding_box(), page.locator("#tab-sweep").bounding_box()
            assert card["width"] > 0.9 * body["width"], (card, body)
        page.locator("#generate-grid").click()
        img = page.locator("#grid-image img")
        expect(img).to_be_visible(timeout=90_000)
        box = img.bounding_box()
        for other in ("#grid-image label[data-testid=block-label]", "#grid-image .icon-button-wrapper"):
            for k in range(page.locator(other).count()):
                ob = page.locator(other).nth(k).bounding_box()
                assert ob is None or not _boxes_overlap(box, ob), (other, ob, box)
        shown = img.evaluate("e => e.getBoundingClientRect().width / e.naturalWidth")
        assert LABEL_PX * shown >= (10 if width < 640 else 12), shown
        page.screenshot(path=str(tmp_path / f"sweep_{width}.png"), full_page=True)
        page.get_by_role("tab", name="FID / IS curves").click()
        expect(page.locator("#curves-plot .main-svg").first).to_be_visible(timeout=30_000)
        titles = page.locator("#curves-plot .infolayer .annotation")
        expect(titles.first).to_be_visible(timeout=30_000)
        boxes = [titles.nth(k).bounding_box() for k in range(titles.count())]
        assert len(boxes) >= 5
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not _boxes_overlap(boxes[i], boxes[j]), (boxes[i], boxes[j])
        page.screenshot(path=str(tmp_path / f"curves_{width}.png"), full_page=True)
        # The exact 2-D lab (issue #23) samples and draws its panels, with its table.
        page.get_by_role("tab", name="Exact 2-D lab").click()
        page.locator("#toy-run").click()
        expect(page.locator("#toy-plot .main-svg").first).to_be_visible(timeout=90_000)
        expect(page.locator("#toy-table")).to_contain_text("mode coverage", timeout=90_000)
        page.screenshot(path=str(tmp_path / f"toy_{width}.png"), full_page=True)
        browser.close()
