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
# # 5. An exact 2-D lab
# A class-conditional Gaussian mixture in 2-D: every noisy marginal $p_\lambda(z \mid c)$ is again a mixture, so the
# scores $\epsilon^*(z_\lambda, c) = -\sigma_\lambda \nabla_z \log p_\lambda(z \mid c)$, $\epsilon^*(z_\lambda)$ and the noisy
# classifier $p_\lambda(c \mid z)$ are exact (`core/toy/`). The app's own samplers and guidance run on it, in float64,
# with $\hat x$ clipping off. Every claim below is asserted.

# %%
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
import matplotlib.pyplot as plt
import torch

from core.guidance import GuidanceOptions
from core.sampling import SamplerConfig, generate, generate_classifier_guided
from core.toy import PRESETS, ExactModel, degraded, log_classifier, measure, sample_tilted

SMALL = os.environ.get("SMALL", "0") == "1"
N = 400 if SMALL else 2000
STEPS = 32 if SMALL else 64
mix = PRESETS["overlap"]
model = ExactModel(mix).eval()
sc = SamplerConfig("ddim", STEPS, clip_x=False)

# %% [markdown]
# ## The implicit classifier, exactly
# Classifier guidance with the exact noisy classifier, $\tilde\epsilon = \epsilon^*(z, c) - w\sigma_\lambda\nabla_z\log
# p_\lambda(c \mid z)$, and CFG, $\tilde\epsilon = (1+w)\epsilon^*(z, c) - w\epsilon^*(z)$, draw the same samples on the same
# seeds: the difference is rounding. This is why CFG needs no classifier.

# %%
def log_prob(z, logsnr, c):
    return log_classifier(z, mix, logsnr).gather(1, c[:, None])[:, 0]


seeds = list(range(200))
x_cfg = generate(model, seeds, [0] * 200, [0.0, 1.0, 3.0], sc)
x_cg = generate_classifier_guided(model, log_prob, seeds, [0] * 200, [0.0, 1.0, 3.0], sc)
gap = float((x_cg - x_cfg).abs().max())
print(f"largest |x_CG − x_CFG| over 200 seeds and w = 0, 1, 3: {gap:.1e}")
assert gap < 1e-9

# %% [markdown]
# ## Does CFG sample $p_w \propto p(x \mid c)^{1+w} p(x)^{-w}$?
# Energy distances to exact draws (the last column is two independent exact draws: the noise floor).

# %%
rows = {}
for sampler in ("ddim", "ancestral"):
    for w in (0.0, 1.0, 3.0):
        row, x = measure(mix, 0, w, SamplerConfig(sampler, STEPS, clip_x=False), N)
        rows[sampler, w] = (row, x)
        print(f"{sampler:>9} " + row.text())
assert rows["ddim", 0.0][0].to_data < 5 * rows["ddim", 0.0][0].floor + 0.003  # w = 0: DDIM samples p(x | c)
assert rows["ddim", 3.0][0].to_tilted > 50 * rows["ddim", 3.0][0].floor  # w = 3: far from p_w
assert rows["ancestral", 3.0][0].to_tilted < rows["ddim", 3.0][0].to_tilted  # the two samplers differ

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
for ax, w in zip(axes, (0.0, 1.0, 3.0)):
    tilt = sample_tilted(mix, 0, w, N, seed=2)
    ax.scatter(tilt[:, 0], tilt[:, 1], s=2, c="#1f77b4", label="exact draws of p_w")
    x = rows["ddim", w][1]
    ax.scatter(x[:, 0], x[:, 1], s=2, c="#d62728", label="CFG, DDIM")
    ax.set_title(f"w = {w:g} (s = {1 + w:g})")
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.2, 1.2)
axes[0].legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# ## Guidance pushes samples out of the class; autoguidance keeps them in
# The share of samples outside class 0's 95 % highest-density region, for CFG and for autoguidance with a blurred copy
# of the mixture (covariances × 2) as its weaker model (Karras et al. 2024).

# %%
auto = SamplerConfig("ddim", STEPS, clip_x=False, opts=GuidanceOptions(method="autoguidance"))
cfg0 = rows["ddim", 0.0][0]
cfg3, _ = measure(mix, 0, 3.0, sc, N)
auto3, _ = measure(mix, 0, 3.0, auto, N, degraded(mix))
print(f"outside the 95 % region: unguided {cfg0.outside:.3f}; at w = 3, CFG {cfg3.outside:.3f}, "
      f"autoguidance {auto3.outside:.3f}")
assert cfg3.outside > 2 * cfg0.outside and auto3.outside < 0.5 * cfg0.outside

# %% [markdown]
# ## A rare mode disappears
# On `rare-mode`, class 0 has a thin mode holding 5 % of its mass. Guidance at w ≥ 1 gives it no samples.

# %%
rare = PRESETS["rare-mode"]
cover = {w: measure(rare, 0, w, sc, N)[0].coverage for w in (0.0, 1.0, 3.0)}
print("mode coverage:", cover)
assert cover[0.0] == 1.0 and cover[3.0] == 0.5
