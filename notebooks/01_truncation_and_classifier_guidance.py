# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The motivation: truncation, and classifier guidance
# The seed's story starts with GANs: BigGAN's **truncation trick** resamples latent values whose magnitude is above a
# threshold, trading variety for sample quality. Diffusion models got the same knob from **classifier guidance**
# (Dhariwal & Nichol 2021): $\tilde\epsilon = \epsilon_\theta(z_\lambda, c) - w\,\sigma_\lambda \nabla_{z_\lambda}\log p_\phi(c \mid z_\lambda)$.
# Everything below runs the shipped model through `core` only. Set `SMALL=1` for a quick run.

# %%
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
import matplotlib.pyplot as plt
import numpy as np
import torch

from core.data import to_uint8
from core.guidance import classifier_log_prob
from core.metrics import classifier_features
from core.noise import NoiseConfig, SeededNoise
from core.pipeline import load_pipeline
from core.sampling import SamplerConfig, generate, generate_classifier_guided

SMALL = os.environ.get("SMALL", "0") == "1"
N_SEEDS = 4 if SMALL else 8
STEPS = 8 if SMALL else 32
pipe = load_pipeline()

# %% [markdown]
# ## Truncated initial noise
# `SeededNoise` draws the initial $z$ from a normal truncated at the threshold (the distribution BigGAN's resampling
# converges to). The histograms show what each threshold leaves.

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 2.5))
for ax, thr in zip(axes, [2, 1, 0.5, 0.04]):
    z = SeededNoise(list(range(64)), (1, 28, 28), NoiseConfig(truncation=thr)).initial()
    ax.hist(z.flatten().numpy(), bins=60)
    ax.set_title(f"threshold {thr}: max |z| = {z.abs().max():.3f}")
    assert z.abs().max() <= thr, f"|z| exceeds the truncation threshold {thr}"
plt.tight_layout()

# %% [markdown]
# ## Truncation and temperature on the same seeds
# Rows: truncation thresholds 2, 1, 0.5, 0.04 on the initial noise, then a noise temperature of 0.6 applied to the
# initial and every per-step noise. Columns: the same seeds.


# %%
def show(rows, names, title):
    imgs = np.stack([to_uint8(r) for r in rows])
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.2 * imgs.shape[1], 1.3 * len(rows)))
    for ax, row, name in zip(np.atleast_1d(axes), imgs, names):
        ax.imshow(np.concatenate(list(row), axis=1), cmap="gray", vmin=0, vmax=255)
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)


seeds = list(range(N_SEEDS))
labels = [2] * N_SEEDS
rows, names = [], []
for thr in [2.0, 1.0, 0.5, 0.04]:
    rows.append(generate(pipe.model, seeds, labels, [0.0], SamplerConfig("ancestral", STEPS),
                         NoiseConfig(truncation=thr))[0])
    names.append(f"|z| ≤ {thr}")
rows.append(generate(pipe.model, seeds, labels, [0.0], SamplerConfig("ancestral", STEPS),
                     NoiseConfig(temperature=0.6, step_temperature=0.6))[0])
names.append("temperature 0.6")
show(rows, names, "Truncation / temperature (w = 0), same seeds")

# %% [markdown]
# With the ancestral sampler, truncating only the *initial* noise changes little: fresh noise enters at every step.
# Lowering the temperature of all noise does change the samples, and tends to blur them.
#
# ## Classifier guidance with the noisy classifier
# `noisy_classifier` is $p_\phi(c \mid z_\lambda, \lambda)$, trained on noisy digits. Its gradient guides the diffusion model.

# %%
lp = classifier_log_prob(pipe.noisy_classifier)
scales = [0.0, 1.0, 3.0, 10.0]
rows = list(generate_classifier_guided(pipe.model, lp, seeds, labels, scales, SamplerConfig("ddim", STEPS)))
show(rows, [f"CG w={w:g}" for w in scales], "Classifier guidance: ε − w σ ∇ log p_φ(c|z)")

# %% [markdown]
# The "adversarial attack" point: the guiding classifier is (near) certain of the class at every $w$, more certain
# than an independent classifier, whose confidence rises with $w$ but stays below it.

# %%
p_guide, p_indep = [], []
for w, x in zip(scales, rows):
    with torch.inference_mode():
        pg = torch.softmax(pipe.noisy_classifier(x, torch.full((N_SEEDS,), 8.0)), 1)[:, 2].mean().item()
    _, probs = classifier_features(pipe.classifier, x)
    p_guide.append(pg)
    p_indep.append(probs[:, 2].mean())
    print(f"w = {w:5.1f}: guiding p_φ(c|x) = {pg:.3f}, independent p(c|x) = {probs[:, 2].mean():.3f}")
assert p_indep[-1] > p_indep[0], "classifier guidance should raise the independent classifier's confidence"
assert min(p_guide) > max(p_indep), "the guiding classifier should be more confident than the independent one"
