"""Shipped weights, metrics against scipy / analytic references, the CLIs and the streaming sweep (issue #3)."""
import json
import shutil

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from core.checkpoint import ASSETS, WeightsError, load_model, sha256_file
from core.metrics import (classifier_features, feature_stats, frechet_distance, inception_score, InceptionFeatures,
                          kernel_inception_distance, load_ref_stats)
from core.sampling import generate
from core.sweep import SweepPoint, chunk_aligned_size, sweep_stream


@pytest.mark.parametrize("stem", ["cfg_unet", "digit_classifier", "noisy_classifier"])
def test_shipped_weights_match_recorded_sha256(stem):
    meta = json.loads((ASSETS / f"{stem}.json").read_text())
    assert sha256_file(ASSETS / f"{stem}.safetensors") == meta["sha256"]


def test_corrupt_or_missing_weights_fail_clearly(tmp_path):
    for ext in ("json", "safetensors"):
        shutil.copy(ASSETS / f"digit_classifier.{ext}", tmp_path / f"m.{ext}")
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


def test_shipped_model_class_accuracy_at_16_steps(pipeline):
    seeds = list(range(100))
    labels = [s % 10 for s in seeds]
    x = generate(pipeline.model, seeds, labels, [0.0], 16, "ddim")[0]
    _, probs = classifier_features(pipeline.classifier, x)
    acc = (probs.argmax(1) == np.array(labels)).mean()
    assert acc >= 0.85, acc


def test_shipped_classifier_heldout_accuracy_recorded():
    meta = json.loads((ASSETS / "digit_classifier.json").read_text())
    assert meta["heldout_accuracy"] >= 0.97
    noisy = json.loads((ASSETS / "noisy_classifier.json").read_text())
    assert noisy["heldout_accuracy_logsnr_4"] > noisy["heldout_accuracy_logsnr_0"] > noisy["heldout_accuracy_logsnr_-4"]


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

    fresh = compute_ref_stats(pipeline.classifier)
    shipped = load_ref_stats()
    np.testing.assert_allclose(fresh["mu"], shipped["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh["sigma"], shipped["sigma"], rtol=1e-4, atol=1e-5)
    assert float(fresh["heldout_fid"]) == pytest.approx(float(shipped["heldout_fid"]), rel=1e-4)


def test_inception_path_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        InceptionFeatures(tmp_path / "inception-2015-12-05.pt")


def test_streaming_sweep_grows_and_stops(pipeline):
    pts = [SweepPoint(0.0), SweepPoint(2.0)]
    stream = sweep_stream(pipeline.model, pipeline.classifier, pts, n=30, steps=4, batch=10, first_batch=10)
    ns = []
    for upd in stream:
        ns.append([r.n for r in upd.results])
        if len(ns) == 2:
            break
    stream.close()
    assert ns == [[10, 10], [20, 20]]
    full = list(sweep_stream(pipeline.model, pipeline.classifier, pts, n=30, steps=4, batch=10))
    assert [u.done for u in full] == [10, 20, 30]
    assert all(np.isfinite(r.fid) and r.is_mean >= 1.0 for r in full[-1].results)


def test_lazy_metrics_equal_eager(pipeline):
    pts = [SweepPoint(0.0), SweepPoint(1.0)]
    kw = dict(n=12, steps=3, batch=6, first_batch=6, kid_subsets=3)

    def metrics(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    eager = [metrics(u.rows(3, "ddim")) for u in sweep_stream(pipeline.model, pipeline.classifier, pts, **kw)]
    stream = sweep_stream(pipeline.model, pipeline.classifier, pts, lazy_metrics=True, **kw)
    first = next(stream)
    assert all(np.isnan(r.fid) for r in first.results)  # nothing computed on the sampling side
    assert metrics(first.rows(3, "ddim")) == eager[0]
    rest = [metrics(u.rows(3, "ddim")) for u in stream]
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


def test_sample_cli_writes_png_and_npz(tmp_path):
    from core.sample import main

    png, npz = tmp_path / "grid.png", tmp_path / "grid.npz"
    main(["--classes", "3", "--w", "0", "1", "--seeds", "0-2", "--steps", "4", "--sampler", "ddim",
          "--out", str(png), "--npz", str(npz), "--device", "cpu"])
    im = Image.open(png)
    assert im.format == "PNG" and im.size[0] > 3 * 28 * 3
    with np.load(npz) as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (2, 3, 28, 28)
        assert list(f["w"]) == [0.0, 1.0] and list(f["seeds"]) == [0, 1, 2] and list(f["labels"]) == [3, 3, 3]
        assert f["images"].std() > 10  # not blank


def test_sweep_cli_writes_csv(tmp_path):
    from core.sweep import CSV_FIELDS, main

    out = tmp_path / "c.csv"
    main(["--w", "0", "1", "--n", "10", "--steps", "3", "--sampler", "ddim", "--batch", "10", "--out", str(out), "--device", "cpu"])
    lines = out.read_text().strip().splitlines()
    assert lines[0].split(",") == CSV_FIELDS and len(lines) == 3


def test_strong_guidance_saturates_and_dynamic_thresholding_fixes_it(pipeline):
    from core.guidance import GuidanceOptions
    from core.sampling import generate_with_raw_x

    seeds = list(range(16))
    labels = [s % 10 for s in seeds]
    _, raw = generate_with_raw_x(pipeline.model, seeds, labels, [0.0, 8.0], 10)
    sat = (raw.abs() > 1).float().mean(dim=(1, 2, 3, 4))
    assert sat[1] > sat[0] + 0.03  # more pixels overshoot [−1, 1] at w = 8
    _, fixed = generate_with_raw_x(pipeline.model, seeds, labels, [8.0], 10, opts=GuidanceOptions(dynamic_threshold=0.995))
    assert (fixed.abs() > 1).float().mean() < 0.01


def test_training_cli_checkpoints_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    from core.train import main

    monkeypatch.chdir(tmp_path)
    args = ["diffusion", "--out", str(tmp_path / "m"), "--batch", "4", "--channels", "8", "16", "16", "--device", "cpu"]
    main(args + ["--steps", "3"])
    main(args + ["--steps", "5", "--resume"])
    log = [json.loads(l) for l in (tmp_path / "runs" / "m" / "train.log").read_text().splitlines()]
    assert sum(1 for r in log if r.get("done")) == 2
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["train"]["steps"] == 5 and meta["train"]["p_uncond"] == 0.1
    assert load_model(tmp_path / "m") is not None
