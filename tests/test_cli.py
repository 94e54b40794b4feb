"""The sample and sweep CLIs against the library calls they wrap; the Inception path with a fake network (issue #14)."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from core.data import load_split, to_uint8
from core.metrics import InceptionFeatures, feature_stats
from core.noise import NoiseConfig
from core.sampling import SamplerConfig, generate
from core.sweep import CSV_FIELDS, SweepConfig, SweepPoint, sweep_stream

METRICS = ["FID", "IS", "IS_std", "KID", "KID_std"]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_rows_match(rows: list[dict], results: list, steps: int, sampler: str) -> None:
    """CSV rows equal sweep_stream's results at the CSV's printed precision (6 significant digits)."""
    assert len(rows) == len(results)
    for row, r in zip(rows, results):
        want = r.row(steps, sampler)
        assert row["label"] == want["label"] and float(row["w"]) == want["w"]
        assert int(row["N"]) == want["N"] and row["steps"] == str(steps) and row["sampler"] == sampler
        for k in METRICS:
            assert row[k] == f"{want[k]:.6g}", (row["label"], k)
        assert all(math.isfinite(float(row[k])) for k in ["FID", "IS", "KID"])


def test_sample_cli_writes_png_and_npz(tmp_path, pipeline):
    """The npz holds exactly generate()'s pixels for the same seeds, per-seed labels, w order, sampler and noise."""
    from core.sample import main

    png, npz = tmp_path / "grid.png", tmp_path / "grid.npz"
    main(["--classes", "3", "7", "1", "--w", "0", "2", "--seeds", "4-6", "--steps", "3", "--sampler", "ancestral",
          "--v", "0.5", "--truncation", "1.5", "--temperature", "0.9", "--out", str(png), "--npz", str(npz),
          "--device", "cpu"])
    x = generate(pipeline.model, [4, 5, 6], [3, 7, 1], [0.0, 2.0], SamplerConfig("ancestral", 3, v=0.5),
                 NoiseConfig(1.5, 0.9))
    want = to_uint8(x.reshape(-1, *x.shape[2:])).reshape(2, 3, 28, 28)
    im = Image.open(png)
    assert im.format == "PNG" and im.size[0] > 3 * 28 * 3
    with np.load(npz) as f:
        assert f["images"].dtype == np.uint8
        assert np.array_equal(f["images"], want)
        assert list(f["w"]) == [0.0, 2.0] and list(f["seeds"]) == [4, 5, 6] and list(f["labels"]) == [3, 7, 1]
    assert want.std() > 10  # not blank


@pytest.mark.parametrize("model,card_sampler", [("digits", None), ("emoji", None), ("digits", "ancestral")])
def test_sample_cli_without_sampler_takes_the_models_default(tmp_path, model, card_sampler):
    """Issue #25: with no --sampler, the CLI samples with the model card's default sampler: the shipped cards' (DDIM),
    and ancestral from a copy of the digits card that names it."""
    from conftest import copy_with_card

    from core.checkpoint import ASSETS
    from core.pipeline import load_pipeline
    from core.sample import main

    assets = copy_with_card(ASSETS, tmp_path / "assets", model, default_sampler=card_sampler) if card_sampler else ASSETS
    npz = tmp_path / "grid.npz"
    main(["--model", model, "--classes", "0", "--w", "1", "--seeds", "0-1", "--steps", "2", "--out",
          str(tmp_path / "g.png"), "--npz", str(npz), "--device", "cpu", "--assets", str(assets)])
    pipe = load_pipeline(model, "cpu", assets)
    want = pipe.card.default_sampler
    assert want == (card_sampler or "ddim")
    x = generate(pipe.model, [0, 1], [0, 0], [1.0], SamplerConfig(want, 2))
    with np.load(npz) as f:
        assert str(f["sampler"]) == want and np.array_equal(f["images"].reshape(-1), to_uint8(x[0]).reshape(-1))


def test_sweep_cli_writes_csv(tmp_path, pipeline):
    """Every CSV row (w points and a truncation baseline) equals sweep_stream run directly on the same arguments."""
    from core.sweep.__main__ import main

    out = tmp_path / "c.csv"
    main(["--w", "0", "1", "--truncation", "0.5", "--n", "10", "--steps", "3", "--sampler", "ancestral", "--v", "0.5",
          "--batch", "10", "--out", str(out), "--device", "cpu"])
    assert out.read_text().splitlines()[0].split(",") == CSV_FIELDS
    points = [SweepPoint(0.0), SweepPoint(1.0), SweepPoint(0.0, NoiseConfig(truncation=0.5))]
    cfg = SweepConfig(tuple(points), 10, 3, "ancestral", 0.5, 10, first_batch=None)
    *_, last = sweep_stream(pipeline.model, pipeline.features, pipeline.ref, cfg)
    assert_rows_match(read_rows(out), last.results, 3, "ancestral")


class FakeInception(torch.nn.Module):
    """Stands in for inception-2015-12-05.pt: refuses anything but uint8 RGB; features = 4×4 average-pooled pixels."""

    def forward(self, x: Tensor, return_features: bool) -> Tensor:
        if x.dtype != torch.uint8 or x.size(1) != 3:
            raise RuntimeError("the FID Inception network takes uint8 RGB images")
        f = F.adaptive_avg_pool2d(x.float(), 4).flatten(1)  # (B, 48); the exact pixels of a 4×4 image
        if return_features:
            return f
        return F.pad(f / 32.0, [0, 1008 - f.shape[1]])


@pytest.fixture(scope="module")
def fake_inception(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(FakeInception()), str(path))
    return path


def test_inception_features_get_uint8_rgb_of_the_digits(fake_inception):
    k = torch.randint(0, 255, (5, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    x = (k + 0.7) / 127.5 - 1  # round((x + 1) · 127.5) = k + 1; truncating would give k
    x[0, 0, 0, 0], x[1, 0, 2, 3] = 1.3, -1.2  # out of range: clipped to 255 and 0
    want = np.round((np.clip(x.double().numpy(), -1, 1) + 1) * 127.5)
    assert want[0, 0, 0, 0] == 255 and want[1, 0, 2, 3] == 0 and want[2, 0, 0, 0] == k[2, 0, 0, 0] + 1
    feats, probs = InceptionFeatures(fake_inception)(x, batch=2)
    assert feats.shape == (5, 48) and probs.shape == (5, 1008)
    np.testing.assert_array_equal(feats.reshape(5, 3, 4, 4), np.repeat(want, 3, axis=1))
    logits = np.pad(want.repeat(3, axis=1).reshape(5, 48) / 32.0, [(0, 0), (0, 1008 - 48)])
    soft = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, soft / soft.sum(1, keepdims=True), rtol=1e-12, atol=0)


def test_inception_refuses_a_state_dict(tmp_path):
    pth = tmp_path / "pt_inception-2015-12-05.pth"
    pth.write_bytes(b"not TorchScript")
    with pytest.raises(ValueError, match="TorchScript"):
        InceptionFeatures(pth)


def test_sweep_cli_with_inception_uses_its_features(tmp_path, pipeline, fake_inception):
    """--inception: the generated and the real training digits both go through the given network."""
    from core.sweep.__main__ import main

    out = tmp_path / "c.csv"
    main(["--w", "0", "2", "--n", "10", "--steps", "3", "--sampler", "ddim", "--batch", "10",
          "--inception", str(fake_inception), "--out", str(out), "--device", "cpu"])
    feats = InceptionFeatures(fake_inception)
    f_real, _ = feats(load_split("train")[0])
    mu, sigma = feature_stats(f_real)
    ref = {"mu": mu, "sigma": sigma, "features": f_real}
    cfg = SweepConfig((SweepPoint(0.0), SweepPoint(2.0)), 10, 3, "ddim", batch=10, first_batch=None)
    *_, last = sweep_stream(pipeline.model, feats, ref, cfg)
    assert_rows_match(read_rows(out), last.results, 3, "ddim")


def test_sample_and_sweep_clis_take_a_guidance_method(tmp_path, pipeline):
    """--method apg (with its η, r, β) gives generate()'s APG pixels and records the method; bad choices are clear."""
    from core.guidance import APGParams, GuidanceOptions
    from core.sample import main as sample_main
    from core.sweep.__main__ import main as sweep_main

    npz = tmp_path / "apg.npz"
    sample_main(["--classes", "2", "--w", "0", "4", "--seeds", "1-2", "--steps", "3", "--sampler", "ddim", "--method",
                 "apg", "--apg-eta", "0.5", "--apg-r", "3", "--apg-beta", "-0.5", "--out", str(tmp_path / "a.png"),
                 "--npz", str(npz), "--device", "cpu"])
    opts = GuidanceOptions(method="apg", apg=APGParams(0.5, 3.0, -0.5))
    x = generate(pipeline.model, [1, 2], [2, 2], [0.0, 4.0], SamplerConfig("ddim", 3, opts=opts))
    with np.load(npz) as f:
        assert np.array_equal(f["images"], to_uint8(x.reshape(-1, *x.shape[2:])).reshape(2, 2, 28, 28))
        assert str(f["method"]) == "apg" and (float(f["apg_eta"]), float(f["apg_r"]), float(f["apg_beta"])) == (0.5, 3, -0.5)
    out = tmp_path / "pp.csv"
    sweep_main(["--w", "0", "1", "--n", "4", "--steps", "3", "--sampler", "ddim", "--method", "cfgpp", "--out", str(out),
                "--device", "cpu"])
    rows = read_rows(out)
    assert [r["method"] for r in rows] == ["cfgpp", "cfgpp"] and float(rows[1]["accuracy"]) >= 0
    with pytest.raises(ValueError, match="CFG\\+\\+ is defined for DDIM only"):
        sweep_main(["--w", "0.5", "--n", "2", "--steps", "3", "--sampler", "ancestral", "--method", "cfgpp",
                    "--out", str(out), "--device", "cpu"])
    if pipeline.guide is None:
        with pytest.raises(ValueError, match="autoguidance needs a weaker model, and none is shipped for 'digits'"):
            sample_main(["--method", "autoguidance", "--seeds", "0", "--steps", "2", "--out", str(tmp_path / "b.png"),
                         "--device", "cpu"])
    else:  # the shipped weaker model: the CLI's pixels are generate()'s with it as the guide
        sample_main(["--method", "autoguidance", "--classes", "5", "--w", "1", "--seeds", "0-1", "--steps", "3",
                     "--sampler", "ddim", "--out", str(tmp_path / "b.png"), "--npz", str(npz), "--device", "cpu"])
        x = generate(pipeline.model, [0, 1], [5, 5], [1.0],
                     SamplerConfig("ddim", 3, opts=GuidanceOptions(method="autoguidance")),
                     guide_model=pipeline.guide)
        with np.load(npz) as f:
            assert np.array_equal(f["images"], to_uint8(x.reshape(-1, *x.shape[2:])).reshape(1, 2, 28, 28))
            assert str(f["method"]) == "autoguidance"


def test_sweep_cli_appends_each_method_to_one_csv(tmp_path):
    """--append keeps the CSV's other rows and replaces a row with the same label; labels name the method and, for
    APG off the paper's defaults, its parameters; APG's columns are blank on other methods' rows."""
    from core.sweep.__main__ import main as sweep_main

    out = tmp_path / "all.csv"
    base = ["--n", "4", "--steps", "2", "--sampler", "ddim", "--out", str(out), "--device", "cpu"]
    sweep_main(["--w", "0", "1", *base])
    first = read_rows(out)
    sweep_main(["--w", "1", "--method", "apg", "--append", *base])
    sweep_main(["--w", "1", "--method", "apg", "--apg-beta", "0", "--apg-clip-x", "--append", *base])
    sweep_main(["--w", "1", "--method", "apg", "--append", *base])  # the same label again: replaced, not duplicated
    rows = read_rows(out)
    assert [r["label"] for r in rows] == ["w=0", "w=1", "apg(η=0 r=2.5 β=0 clip):w=1", "apg:w=1"]
    assert rows[:2] == first and rows[0]["apg_eta"] == "" and rows[0]["method"] == "cfg"
    assert (rows[2]["apg_beta"], rows[2]["apg_clip_x"], rows[3]["apg_beta"], rows[3]["apg_clip_x"]) == ("0", "1", "-0.75", "0")
    assert rows[2]["FID"] != rows[3]["FID"]


BAD_ARGUMENTS = [  # (CLI, arguments, what the one line must say): issue #21's cases, and one per other CLI
    ("core.sample", ["--model", "no-such-model"], "unknown model 'no-such-model'"),
    ("core.sample", ["--steps", "0"], "steps must be an integer in [1, 256]"),
    ("core.sample", ["--classes", "11"], "class must be in 0..9, got 11"),
    ("core.sample", ["--w", "nan"], "guidance weights must be finite"),
    ("core.sample", ["--seeds", "5-2"], "bad seed range '5-2'"),
    ("core.sample", ["--method", "cfgpp", "--sampler", "ancestral", "--w", "0.5"], "CFG++ is defined for DDIM only"),
    ("core.sample", ["--assets", "/nonexistent"], "unknown model 'digits'"),
    ("core.sample", ["--seeds", "0-100000"], "a grid holds at most 1,024"),
    ("core.sample", ["--steps", "ten"], "argument --steps: invalid int value: 'ten'"),
    ("core.sweep", ["--model", "no-such-model", "--n", "10"], "unknown model 'no-such-model'"),
    ("core.sweep", ["--n", "0", "--steps", "2"], "N must be ≥ 1"),
    ("core.train", ["diffusion", "--out", "assets/x_bad", "--guide-for", "digits"], "use --out assets/digits_bad"),
    ("core.metrics", ["--write-ref", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    ("core.data", ["emoji"], "emoji needs --npm-dir DIR"),
    ("core.toy", ["--preset", "overlap", "--class", "5"], "--class must be in 0..1"),
]


@pytest.mark.parametrize("cli,args,message", BAD_ARGUMENTS, ids=[f"{c}:{' '.join(a)}" for c, a, _ in BAD_ARGUMENTS])
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path, cli, args, message):
    """Issue #21: every CLI answers input it cannot use with one line, `error: …`, and exit 2: no traceback, no hang."""
    import subprocess
    import sys

    from conftest import ROOT

    extra = ["--out", str(tmp_path / "x.png")] if cli == "core.sample" else []
    r = subprocess.run([sys.executable, "-m", cli, *args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert message in lines[0], lines[0]


def test_the_exact_lab_cli_prints_one_row_per_w(tmp_path):
    """`python -m core.toy` (issue #23): one row per w, fidelity rising with w on the overlap preset."""
    import re
    import subprocess
    import sys

    from conftest import ROOT

    npz = tmp_path / "lab.npz"
    r = subprocess.run([sys.executable, "-m", "core.toy", "--preset", "overlap", "--w", "0", "3", "--n", "300",
                        "--steps", "16", "--npz", str(npz)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [l for l in r.stdout.splitlines() if " w = " in l]
    fid = [float(re.search(r"mean log p\(c\|x\)\s+(-?[0-9.]+)", l).group(1)) for l in rows]
    assert len(rows) == 2 and fid[1] > fid[0]
    with np.load(npz) as f:
        assert f["samples"].shape == (2, 300, 2) and f["tilted"].shape == (2, 300, 2) and list(f["w"]) == [0.0, 3.0]
        assert f["means"].shape == (3, 2) and f["covs"].shape == (3, 2, 2) and abs(f["weights"].sum() - 1) < 1e-12
        assert (f["labels"] == 0).all() and list(f["component_class"]) == [0, 1, 1]
