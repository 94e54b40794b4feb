"""The shipped colour model (#12, #25): its files, bitwise same-seed RGB samples, guidance's effect on class and colour,
and its shipped N = 2,000 sweep against a live re-measurement."""
import json

import numpy as np
import pytest
import torch

from core.checkpoint import ASSETS, sha256_file
from core.data import to_uint8
from core.metrics import colour_stats
from core.sampling import SamplerConfig, generate


@pytest.fixture(scope="module")
def emoji():
    from core.pipeline import load_pipeline

    return load_pipeline("emoji", "cpu")


@pytest.mark.parametrize("stem", ["emoji", "emoji_classifier", "emoji_noisy_classifier"])
def test_shipped_colour_weights_match_their_sha256(stem):
    meta = json.loads((ASSETS / f"{stem}.json").read_text())
    assert sha256_file(ASSETS / f"{stem}.safetensors") == meta["sha256"]


def test_the_colour_model_card(emoji):
    card = emoji.card
    assert card.shape == (3, 32, 32) and card.class_names[0] == "Smileys & Emotion" and card.class_names[8] == "Flags"
    assert "Twemoji" in card.licence and "CC-BY-4.0" in card.licence and card.dataset == "emoji-npm"


def test_the_colour_model_card_records_its_recipe_and_runs():
    """Issue #25: the card records the recipe (v-prediction, the fixed 30,000-step schedule, the 15,000-step EMA
    snapshot), the resumed runs that made it and their hardware; the app's card line says it."""
    from core.registry import model_card

    meta = json.loads((ASSETS / "emoji.json").read_text())
    assert meta["config"]["prediction"] == "v" and meta["train"]["steps"] == 30000 and meta["snapshot_step"] == 15000
    runs = meta["resumed_runs"]
    assert [r["steps"][0] for r in runs] == [0] + [r["steps"][1] for r in runs[:-1]] and runs[-1]["steps"][1] == 15000
    assert meta["train_seconds"] == sum(r["seconds"] for r in runs) and "1 core" in meta["device_name"]
    assert model_card("emoji").recipe.startswith("v-prediction, UNet (32, 64, 64), EMA weights at step 15,000 of a "
                                                 "30,000-step schedule")


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_rgb_same_seed_alone_equals_inside_grid_bitwise(emoji, sampler):
    alone = generate(emoji.model, [7], [2], [3.0], SamplerConfig(sampler, 4))[0, 0]
    grid = generate(emoji.model, [5, 7, 9], [0, 2, 8], [0.0, 3.0], SamplerConfig(sampler, 4))
    assert alone.shape == (3, 32, 32) and torch.equal(alone, grid[1, 1])


def test_guidance_raises_class_accuracy_and_saturation(emoji):
    """Measured with the emoji-group classifier on the app's default sampler (DDIM, T = 10), 12 seeds per class."""
    seeds = list(range(108))
    labels = [s % 9 for s in seeds]
    x = generate(emoji.model, seeds, labels, [0.0, 3.0, 8.0], SamplerConfig("ddim", 10))
    acc = [float((emoji.features(x[j])[1].argmax(1) == np.array(labels)).mean()) for j in range(3)]
    sat = [colour_stats(to_uint8(x[j]))["mean_saturation"] for j in range(3)]
    assert acc[1] > acc[0] + 0.1, acc
    assert sat[2] > sat[0], sat


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_the_shipped_sweep_matches_a_live_remeasurement(emoji, sampler):
    """Each shipped CSV (T = 10) was made with these weights: the first 90 of its seeds at w = 3 give its accuracy and
    saturation within sampling error, and it covers w 0 … 4 and the truncation baselines at N = 2,000 with colour
    columns."""
    import csv

    with open(emoji.card.sweep_path(sampler, 10)) as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    assert {"w=0", "w=0.5", "w=1", "w=2", "w=3", "w=4", "trunc=2", "trunc=0.04"} <= set(rows)
    assert all(int(r["N"]) >= 2000 and r["mean_saturation"] != "" for r in rows.values())
    seeds = list(range(90))
    labels = [s % 9 for s in seeds]
    x = generate(emoji.model, seeds, labels, [3.0], SamplerConfig(sampler, 10))[0]
    acc = float((emoji.features(x)[1].argmax(1) == np.array(labels)).mean())
    assert abs(acc - float(rows["w=3"]["accuracy"])) < 0.16, (acc, rows["w=3"]["accuracy"])  # ≈ 3 binomial s.d. at N = 90
    sat = colour_stats(to_uint8(x))["mean_saturation"]
    assert abs(sat - float(rows["w=3"]["mean_saturation"])) < 0.05, (sat, rows["w=3"]["mean_saturation"])


def test_the_shipped_sweeps_reach_the_accuracy_figures_against_the_real_emoji(emoji):
    """Issue #25's figures on the shipped N = 2,000 sweeps (T = 10): the classifier reads the real held-out emoji at
    70–80 % class-balanced (the Unicode groups overlap); unguided samples of the card's default sampler reach 65 % (88 %
    of that) and w = 3 reaches 88 %, above the real emoji. On both samplers mean saturation starts below the real
    emoji's at w = 0 and passes it by w = 3, rising on to w = 8."""
    import csv

    from core.data import load_split
    from core.metrics import class_balanced_accuracy

    x, y = load_split("heldout", "emoji-npm")
    real = class_balanced_accuracy(emoji.features(x)[1], y.numpy())
    real_sat = colour_stats(to_uint8(x))["mean_saturation"]
    assert 0.7 < real < 0.8, real
    rows = {}
    for sampler in ("ddim", "ancestral"):
        with open(emoji.card.sweep_path(sampler, 10)) as f:
            rows[sampler] = {r["label"]: r for r in csv.DictReader(f)}
    default = rows[emoji.card.default_sampler]
    acc = {k: float(default[k]["accuracy"]) for k in ("w=0", "w=3")}
    assert acc["w=0"] >= 0.65 and acc["w=0"] >= 0.88 * real and acc["w=3"] >= 0.88, (acc, real)
    for sampler, r in rows.items():
        sat = [float(r[f"w={w}"]["mean_saturation"]) for w in (0, 3, 8)]
        assert sat[0] < real_sat < sat[1] < sat[2], (sampler, sat, real_sat)
        assert float(r["w=3"]["accuracy"]) > real + 0.1, (sampler, r["w=3"]["accuracy"], real)


def test_too_close_share_reads_copies_as_memorised_and_new_images_as_not():
    """The memorisation measure's oracles: held-out points against themselves give about the percentile's share, copies
    of training points give 1."""
    from core.metrics import too_close_share

    rng = np.random.default_rng(0)
    train, heldout, fresh = rng.normal(size=(2000, 8)), rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    assert too_close_share(train[:300] + 1e-9, train, heldout) == 1.0
    assert abs(too_close_share(fresh, train, heldout) - 0.05) < 0.03


def test_the_shipped_colour_model_does_not_copy_its_training_emoji(emoji):
    """Issue #25: at most 5 % of unguided samples (the card's default sampler, T = 10) lie closer to their nearest
    training emoji than the 5th percentile of the held-out emoji's nearest-training distances, in pixels and in the
    classifier's features."""
    from core.data import load_split
    from core.metrics import too_close_share

    train, _ = load_split("train", "emoji-npm")
    heldout, _ = load_split("heldout", "emoji-npm")
    seeds = list(range(270))
    x = generate(emoji.model, seeds, [s % 9 for s in seeds], [0.0], SamplerConfig(emoji.card.default_sampler, 10))[0]
    flat = [t.reshape(len(t), -1).numpy() for t in (x, train, heldout)]
    pixels = too_close_share(*flat)
    feats = too_close_share(*(emoji.features(t)[0] for t in (x, train, heldout)))
    assert pixels <= 0.05 and feats <= 0.05, (pixels, feats)
