"""The shipped colour model (#12): its files, bitwise same-seed RGB samples, guidance's effect on class and colour."""
import json

import numpy as np
import pytest
import torch

from core.checkpoint import ASSETS, sha256_file
from core.data import to_uint8
from core.metrics import colour_stats
from core.sampling import generate

pytestmark = pytest.mark.skipif(not (ASSETS / "emoji.json").is_file(), reason="the colour model is not shipped")


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


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_rgb_same_seed_alone_equals_inside_grid_bitwise(emoji, sampler):
    alone = generate(emoji.model, [7], [2], [3.0], 4, sampler)[0, 0]
    grid = generate(emoji.model, [5, 7, 9], [0, 2, 8], [0.0, 3.0], 4, sampler)
    assert alone.shape == (3, 32, 32) and torch.equal(alone, grid[1, 1])


def test_guidance_raises_class_accuracy_and_saturation(emoji):
    """Measured with the emoji-group classifier on the app's default sampler (DDIM, T = 10), 12 seeds per class."""
    seeds = list(range(108))
    labels = [s % 9 for s in seeds]
    x = generate(emoji.model, seeds, labels, [0.0, 3.0, 8.0], 10, "ddim")
    acc = [float((emoji.features(x[j])[1].argmax(1) == np.array(labels)).mean()) for j in range(3)]
    sat = [colour_stats(to_uint8(x[j]))["mean_saturation"] for j in range(3)]
    assert acc[1] > acc[0] + 0.1, acc
    assert sat[2] > sat[0], sat
