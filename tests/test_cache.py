"""The result cache (issue #24): a hit is the miss's result, any change of the request misses, the bytes stay bounded,
and concurrent identical requests compute once."""
import threading
import time

import torch

from core.sampling import SamplerConfig
from demo import handlers as H
from demo.cache import ResultCache


def test_a_hit_returns_the_misses_pixels_and_any_change_misses(rt):
    slot = rt.slot("digits")
    sc = SamplerConfig("ddim", 3)
    a = H._sample(slot, [0, 1], [3, 3], [1.0], sc)
    hits = slot.results.hits
    b = H._sample(slot, [0, 1], [3, 3], [1.0], sc)
    assert slot.results.hits == hits + 1 and torch.equal(a, b)
    misses = slot.results.misses
    variants = [([0, 2], [3, 3], [1.0], sc), ([0, 1], [3, 4], [1.0], sc), ([0, 1], [3, 3], [1.5], sc),
                ([0, 1], [3, 3], [1.0], SamplerConfig("ancestral", 3)), ([0, 1], [3, 3], [1.0], SamplerConfig("ddim", 4)),
                ([0, 1], [3, 3], [1.0], SamplerConfig("ddim", 3, v=0.5))]
    for args in variants:
        H._sample(slot, *args)
    assert slot.results.misses == misses + len(variants)
    # the image a handler builds from a hit is byte-for-byte the one it built from the miss
    img1, _ = H.slider_row(rt, 2.0, 3, 0, "ddim", 3)
    img2, _ = H.slider_row(rt, 2.0, 3, 0, "ddim", 3)
    assert img1.tobytes() == img2.tobytes()


def test_the_cache_stays_within_its_bytes():
    cache = ResultCache(max_bytes=4000)
    for k in range(10):
        cache.get_or_compute(k, lambda: torch.zeros(250))  # 1,000 bytes each
    assert cache.bytes <= 4000 and len(cache) == 4
    assert cache.get_or_compute(9, lambda: torch.ones(250)).sum() == 0  # the newest is kept


def test_concurrent_identical_requests_compute_once():
    cache = ResultCache()
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return torch.arange(4.0)

    out = []
    threads = [threading.Thread(target=lambda: out.append(cache.get_or_compute("k", compute))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(out) == 5 and all(torch.equal(o, out[0]) for o in out)
    assert cache.misses == 1 and cache.hits == 4


def test_the_scrub_strip_comes_from_the_cache_the_second_time(rt):
    """The strip every student of a class builds first is computed once; the second build is a hit, same pixels."""
    slot = rt.slot("digits")
    html1, _ = H.scrub_strip(rt, 5, 0, "ddim", 2, progress=lambda *a, **k: None)
    hits = slot.results.hits
    html2, _ = H.scrub_strip(rt, 5, 0, "ddim", 2, progress=lambda *a, **k: None)
    assert slot.results.hits == hits + 1 and html1 == html2


def test_a_strips_rows_are_the_slider_rows_and_a_grid_is_built_from_cached_rows(rt):
    """A computed grid leaves each w's row in the cache: the slider's row at a strip's w is then a hit, bitwise the row
    computed alone (tested against a fresh computation), and a grid whose rows are all cached is assembled from them."""
    slot = rt.slot("emoji")
    sc = SamplerConfig("ddim", 2)
    seeds, ws = list(range(900, 908)), [0.0, 1.5, 4.0]
    grid = H._sample(slot, seeds, [2] * 8, ws, sc)
    hits = slot.results.hits
    rows = [H._sample(slot, seeds, [2] * 8, [w], sc) for w in ws]
    assert slot.results.hits == hits + len(ws)
    fresh = H.generate(slot.pipe.model, seeds, [2] * 8, [1.5], sc)  # computed alone, no cache
    assert torch.equal(rows[1], fresh) and torch.equal(grid[1:2], fresh)
    misses = slot.results.misses
    assembled = H._sample(slot, seeds, [2] * 8, [4.0, 0.0], sc)  # a new grid of cached rows: nothing computed
    assert slot.results.misses == misses and torch.equal(assembled, torch.cat([rows[2], rows[0]]))
