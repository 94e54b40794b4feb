"""The colour data builder (#12): a fake npm folder of generated PNGs, deterministic output, the shipped prepared set."""
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from core.data import (EMOJI_CLASSES, EMOJI_PACKAGES, EMOJI_SIZE, build_emoji, load_split, main,
                       save_npz_deterministic)
from core.checkpoint import ASSETS


def _png(rgba: tuple[int, int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), rgba).save(buf, format="PNG")
    return buf.getvalue()


def _fake_npm(folder, design: str, tgz: str) -> None:
    """A tarball laid out like emoji-datasource-<design>: package/emoji.json and package/img/<design>/64/*.png."""
    entries = []
    for k, cat in enumerate(EMOJI_CLASSES + ("Component",)):
        for j in range(3):
            code = f"{k:02x}{j:02x}"
            entries.append({"unified": code, "image": f"{code}.png", "category": cat, f"has_img_{design}": j != 2,
                            "skin_variations": {"1F3FB": {"unified": code + "-1F3FB", "image": code + "-1f3fb.png"}}})
    with tarfile.open(folder / tgz, "w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("package/emoji.json", json.dumps(entries[::-1]).encode())  # any order in the file
        for e in entries:
            k = int(e["unified"][:2], 16)
            add(f"package/img/{design}/64/{e['image']}", _png((20 * k, 255 - 20 * k, 100, 128)))  # half transparent
            add(f"package/img/{design}/64/{e['unified'].lower()}-1f3fb.png", _png((0, 0, 0, 255)))  # a skin tone


@pytest.fixture(scope="module")
def npm(tmp_path_factory):
    d = tmp_path_factory.mktemp("npm")
    for design, tgz in EMOJI_PACKAGES.items():
        _fake_npm(d, design, tgz)
    return d


def test_builder_on_a_fake_npm_folder(npm):
    data = build_emoji(npm)
    # 9 groups × 2 images with this design's image × 2 designs; Component and skin tones are dropped.
    assert data["images"].shape == (36, EMOJI_SIZE, EMOJI_SIZE, 3) and data["images"].dtype == np.uint8
    assert list(np.bincount(data["labels"])) == [4] * 9 and list(data["class_names"]) == list(EMOJI_CLASSES)
    assert list(data["design"]) == [0] * 18 + [1] * 18
    # Alpha-composited on white: a half-transparent (R, G, 100) pixel becomes about (R + 255)/2, (G + 255)/2, 177.
    k = data["labels"][0]
    np.testing.assert_allclose(data["images"][0, 5, 5], [(20 * k + 255) / 2, (255 - 20 * k + 255) / 2, 177.5], atol=1.5)
    assert data["heldout"].sum() == 0  # round(10 % of 4) = 0 per class
    assert not (data["images"] == 0).all(-1).any()  # no black skin-tone swatch slipped in


def test_builder_is_deterministic(npm, tmp_path):
    a = tmp_path / "a.npz"
    main(["emoji", "--npm-dir", str(npm), "--out", str(a)])
    b_sha = save_npz_deterministic(tmp_path / "b.npz", build_emoji(npm))
    record = json.loads(a.with_suffix(".json").read_text())
    assert record["sha256"] == b_sha and record["images"] == 36 and set(record["tarballs"]) == set(EMOJI_PACKAGES.values())
    with np.load(a) as f:
        assert f["images"].shape == (36, 32, 32, 3)


def test_the_shipped_prepared_set():
    import hashlib

    record = json.loads((ASSETS / "emoji_data.json").read_text())
    assert hashlib.sha256((ASSETS / "emoji_data.npz").read_bytes()).hexdigest() == record["sha256"]
    assert record["images"] == 3812 and list(record["per_class"].values()) == [338, 772, 318, 262, 436, 170, 528, 448, 540]
    x_tr, y_tr = load_split("train", "emoji-npm")
    x_he, y_he = load_split("heldout", "emoji-npm")
    assert x_tr.shape[1:] == (3, 32, 32) and x_tr.shape[0] + x_he.shape[0] == 3812
    assert list(np.bincount(y_he.numpy())) == [round(0.1 * n) for n in record["per_class"].values()]
    assert -1.0 <= x_tr.min() and x_tr.max() <= 1.0
    from core.metrics import colour_stats
    from core.data import load_emoji_arrays

    images, _ = load_emoji_arrays()
    nonwhite = (images < 250).any(-1)
    st = colour_stats(images)
    assert 0.2 < st["mean_saturation"] < 0.5 and nonwhite.mean() > 0.3  # the data's own reference level
