"""A real headless Chromium (Debian's, via Playwright) loads the app, generates a grid and checks the image (#4)."""
import io
import shutil

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
        page.screenshot(path="/tmp/cfg_explorer_browser.png", full_page=False)
        browser.close()
