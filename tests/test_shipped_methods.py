"""The shipped methods after CFG (#13): the weaker models for autoguidance, and the shipped N = 2,000 method rows against a
live re-measurement on the first seeds of the same sweep."""
import csv
import json

import numpy as np
import pytest

from core.checkpoint import ASSETS, sha256_file
from core.data import to_uint8
from core.guidance import APGParams, GuidanceOptions
from core.metrics import colour_stats
from core.pipeline import load_pipeline
from core.sampling import SamplerConfig, generate

SEEDS = list(range(90))  # the sweep's first seeds: labels seed mod K, as every shipped sweep


def shipped_rows(pipe) -> dict[str, dict]:
    with open(pipe.card.sweep_path("ddim", 10)) as f:
        return {r["label"]: r for r in csv.DictReader(f)}


def accuracy_gain(row: dict, unguided: dict) -> float:
    return float(row["accuracy"]) - float(unguided["accuracy"])


def weight_rows(rows, method: str) -> list[dict]:
    """A method's guidance-weight rows: no truncation, temperature 1."""
    return [r for r in rows if r["method"] == method and not r["truncation"] and float(r["temperature"]) == 1.0]


@pytest.fixture(scope="module", params=["digits", "emoji"])
def pipe(request):
    return load_pipeline(request.param, "cpu")


def test_the_weaker_model_is_a_smaller_shorter_trained_companion(pipe):
    """NAME_bad: sha256-checked, marked as NAME's guide, narrower and trained for fewer steps with the same recipe."""
    main = json.loads(pipe.card.stem().with_suffix(".json").read_text())
    bad = json.loads(pipe.card.stem("bad").with_suffix(".json").read_text())
    assert sha256_file(ASSETS / f"{pipe.card.name}_bad.safetensors") == bad["sha256"] and pipe.guide is not None
    assert bad["guide_for"] == pipe.card.name
    assert sum(bad["config"]["channels"]) < sum(main["config"]["channels"])
    assert bad["train"]["steps"] < main["train"]["steps"]
    same = ("p_uncond", "lr", "ema_decay", "batch", "warmup", "augment_shift")
    assert {k: bad["train"][k] for k in same} == {k: main["train"][k] for k in same}
    assert bad["train"]["dataset"] == pipe.card.dataset


def test_every_method_is_shipped_at_n_2000_on_the_same_settings(pipe):
    rows = shipped_rows(pipe)
    methods = {r["method"] for r in rows.values()}
    assert methods == {"cfg", "apg", "cfgpp", "autoguidance"}
    assert {"apg:w=8", "apg(η=0 r=20 β=0):w=8", "cfgpp:w=1", "w=8"} <= set(rows)
    assert all(int(r["N"]) >= 2000 and r["sampler"] == "ddim" and r["steps"] == "10" for r in rows.values())


def test_autoguidance_rows_match_a_live_remeasurement(pipe):
    """The first 90 seeds of the shipped autoguidance row at w = 1 give its class accuracy within sampling error."""
    labels = [s % pipe.card.num_classes for s in SEEDS]
    x = generate(pipe.model, SEEDS, labels, [1.0],
                 SamplerConfig("ddim", 10, opts=GuidanceOptions(method="autoguidance")), guide_model=pipe.guide)[0]
    acc = float((pipe.features(x)[1].argmax(1) == np.array(labels)).mean())
    want = float(shipped_rows(pipe)["autoguidance:w=1"]["accuracy"])
    assert abs(acc - want) < 0.16, (acc, want)  # ≈ 3 binomial s.d. at N = 90


def test_autoguidance_beats_cfgs_best_fid_on_the_colour_model():
    """Issue #25, on the shipped emoji sweep: with the v model and a weaker v model as its guide, autoguidance's best
    FID and KID are below CFG's best (Karras et al.'s claim), at close to unguided class accuracy (no push to the
    classifier's modes), where CFG's best FID comes with a 9-point accuracy gain."""
    rows = shipped_rows(load_pipeline("emoji", "cpu")).values()
    best, kid = {}, {}
    for method in ("cfg", "autoguidance"):
        pts = weight_rows(rows, method)
        best[method] = min(pts, key=lambda r: float(r["FID"]))
        kid[method] = min(float(r["KID"]) for r in pts)
    cfg0 = next(r for r in rows if r["label"] == "w=0")
    assert float(best["autoguidance"]["FID"]) < float(best["cfg"]["FID"]) - 5, best
    assert kid["autoguidance"] < kid["cfg"], kid
    assert abs(float(best["autoguidance"]["accuracy"]) - float(cfg0["accuracy"])) < 0.05, best
    assert float(best["cfg"]["accuracy"]) > float(cfg0["accuracy"]) + 0.05, best


def test_apg_with_the_papers_defaults_holds_saturation_near_the_data_on_the_v_model():
    """Emoji, the shipped rows: APG with the paper's defaults (η = 0, r = 2.5, β = −0.75) keeps mean saturation at
    w = 8 within 0.03 of the real held-out emoji's (CFG: 0.06 above) and keeps over half of CFG's accuracy gain; at
    w = 3 its FID is below CFG's best. (On the ε model it lost the whole gain: x̂ from ε at λ = −20 is ~10⁴ times the
    data range and its momentum carried that step; x̂ from v is bounded there.)"""
    from core.data import load_split

    rows = shipped_rows(load_pipeline("emoji", "cpu"))
    real = colour_stats(to_uint8(load_split("heldout", "emoji-npm")[0]))["mean_saturation"]
    apg8, cfg8, cfg0 = rows["apg:w=8"], rows["w=8"], rows["w=0"]
    assert abs(float(apg8["mean_saturation"]) - real) < 0.03 < float(cfg8["mean_saturation"]) - real, (apg8, real)
    gain = {"apg": accuracy_gain(apg8, cfg0), "cfg": accuracy_gain(cfg8, cfg0)}
    assert gain["apg"] > 0.5 * gain["cfg"] > 0, gain
    cfg_best = min(float(r["FID"]) for r in weight_rows(rows.values(), "cfg"))
    assert float(rows["apg:w=3"]["FID"]) < cfg_best, (rows["apg:w=3"], cfg_best)


def test_apg_without_momentum_keeps_accuracy_and_clips_less_than_cfg():
    """Emoji, w = 8: APG (η = 0, r = 20, β = 0) re-measured on 90 seeds matches its shipped row. The shipped rows are
    docs/results.md's answer to #13 on the v model: it keeps 80 % or more of CFG's accuracy gain over unguided sampling
    with under half of CFG's clipped channel values, but its mean saturation is not below CFG's."""
    emoji = load_pipeline("emoji", "cpu")
    rows = shipped_rows(emoji)
    apg, cfg8, cfg0 = rows["apg(η=0 r=20 β=0):w=8"], rows["w=8"], rows["w=0"]
    gain = {"apg": accuracy_gain(apg, cfg0), "cfg": accuracy_gain(cfg8, cfg0)}
    assert gain["apg"] > 0.8 * gain["cfg"] > 0, gain
    clipped, sat = ([float(r[k]) for r in (apg, cfg8)] for k in ("clipped_share", "mean_saturation"))
    assert clipped[0] < 0.5 * clipped[1], clipped
    assert sat[0] >= sat[1], sat
    labels = [s % 9 for s in SEEDS]
    opts = GuidanceOptions(method="apg", apg=APGParams(eta=0.0, norm_bound=20.0, momentum=0.0))
    x = generate(emoji.model, SEEDS, labels, [8.0], SamplerConfig("ddim", 10, opts=opts))[0]
    acc = float((emoji.features(x)[1].argmax(1) == np.array(labels)).mean())
    live = colour_stats(to_uint8(x))
    assert abs(acc - float(apg["accuracy"])) < 0.16, (acc, apg["accuracy"])
    assert abs(live["mean_saturation"] - float(apg["mean_saturation"])) < 0.05, (live, apg["mean_saturation"])
    assert abs(live["clipped_share"] - float(apg["clipped_share"])) < 0.05, (live, apg["clipped_share"])
