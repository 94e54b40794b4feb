# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Colour saturation under guidance (the paper's Figure 4, on emoji)
# The paper's most quoted visual claim is that strongly guided samples have saturated colours (its Figure 4, $w = 3$).
# Grayscale digits cannot show it, so this notebook uses the project's colour model: a class-conditional UNet trained
# with the paper's recipe on 3,812 emoji (Noto Emoji, Apache-2.0, and Twemoji, CC-BY-4.0) labelled by Unicode group.
#
# 1. the data and its own colour statistics;
# 2. same-seed colour grids over $w$ (and the diffusers scale $s = 1 + w$);
# 3. the saturation metrics against $w$, with the data's level as a reference line;
# 4. the remedies (dynamic thresholding, CFG-rescale, a guidance interval) at $w = 3$ and $w = 8$.

# %%
import csv
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
import matplotlib.pyplot as plt
import numpy as np

from core.data import load_split, to_uint8
from core.guidance import REMEDIES
from core.images import grid_image
from core.metrics import colour_stats
from core.pipeline import load_pipeline
from core.sampling import SamplerConfig, generate

SMALL = os.environ.get("SMALL", "0") == "1"
SEEDS = list(range(9 if SMALL else 36))
STEPS = 10  # the app's default steps for this model
WS = [0.0, 1.0, 3.0, 8.0] if SMALL else [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
pipe = load_pipeline("emoji")
names = pipe.card.class_names
K = pipe.card.num_classes
labels = [s % K for s in SEEDS]
SAMPLER = pipe.card.default_sampler  # the app's default sampler for this model (its card)
print(pipe.card.title, "|", pipe.card.licence, "|", pipe.card.recipe, "|", SAMPLER)

# %% [markdown]
# ## 1. The data
# Four held-out emoji per class (the model never saw these), and the colour statistics of the whole held-out set.

# %%
real, real_y = load_split("heldout", pipe.card.dataset)
real_u8 = to_uint8(real)
per_class = np.stack([real_u8[(real_y == k).numpy()][:4] for k in range(K)])
display(grid_image(per_class, scale=2, row_labels=list(names)))
data_stats = colour_stats(real_u8)
for key, v in data_stats.items():
    print(f"data {key:>16}: {v:.3f}")

# %% [markdown]
# ## 2. Same seeds, growing $w$
# Every row uses the same seeds and labels; only $w$ changes. Colours grow more saturated and shapes simpler.

# %%
x = generate(pipe.model, SEEDS, labels, WS, SamplerConfig(SAMPLER, STEPS))
u8 = np.stack([to_uint8(xj) for xj in x])
display(grid_image(u8[:, :9], scale=2, row_labels=[f"w={w:g} s={1 + w:g}" for w in WS],
                   col_labels=[names[k][:6] for k in labels[:9]]))

# %% [markdown]
# ## 3. Saturation against $w$
# Four measures (see `core.metrics.colour_stats`): mean HSV saturation, the share of pixels with $S > 0.9$,
# Hasler & Süsstrunk's colourfulness and the share of channel values clipped at 0 or 255.

# %%
stats = [colour_stats(u) for u in u8]
fig, axes = plt.subplots(1, 4, figsize=(15, 3))
for ax, key in zip(axes, data_stats):
    ax.plot(WS, [s[key] for s in stats], "o-", label=f"samples, N={len(SEEDS)}")
    ax.axhline(data_stats[key], color="gray", ls="--", label="real held-out data")
    ax.set_xlabel("w")
    ax.set_title(key)
axes[0].legend(fontsize=7)
plt.tight_layout()
plt.show()
for w, s in zip(WS, stats):
    print(f"w = {w:g}: " + "  ".join(f"{k} {v:.3f}" for k, v in s.items()))
assert stats[-1]["mean_saturation"] > stats[0]["mean_saturation"], "w = 8 should be more saturated than w = 0"

# %% [markdown]
# The shipped sweep (N = 2,000 per point, the same seeds at every $w$) gives the same curves with far less noise,
# together with the class accuracy of the project's emoji classifier.

# %%
with open(pipe.card.sweep_path(SAMPLER, 10)) as f:
    big = [r for r in csv.DictReader(f) if not r["truncation"] and float(r["temperature"]) == 1.0]
for r in big:
    print(f"w = {float(r['w']):4g}: FID {float(r['FID']):6.2f}  IS {float(r['IS']):5.2f}  accuracy "
          f"{100 * float(r['accuracy']):5.1f} %  mean saturation {float(r['mean_saturation']):.3f}  "
          f"saturated share {float(r['saturated_share']):.3f}")
plt.figure(figsize=(5, 3))
plt.plot([float(r["w"]) for r in big], [float(r["mean_saturation"]) for r in big], "s-", label="N = 2,000")
plt.axhline(data_stats["mean_saturation"], color="gray", ls="--", label="real held-out data")
plt.xlabel("w")
plt.ylabel("mean HSV saturation")
plt.legend()
plt.show()

# %% [markdown]
# ## 4. Remedies at $w = 3$ and $w = 8$
# Each remedy alone, on the same seeds: Imagen's dynamic thresholding, CFG-rescale (Lin et al. 2023) and guiding only
# inside a $\lambda$ interval (Kynkäänniemi et al. 2024).

# %%
rows, tiles = [], []
for w in (3.0, 8.0):
    for name, opts in REMEDIES:
        xr = to_uint8(generate(pipe.model, SEEDS, labels, [w], SamplerConfig(SAMPLER, STEPS, opts=opts))[0])
        rows.append((w, name, colour_stats(xr)))
        tiles.append(xr[:9])
display(grid_image(np.stack(tiles), scale=2, row_labels=[f"w={w:g} {n.split(' ')[0]}" for w, n, _ in rows]))
for w, name, s in rows:
    print(f"w = {w:g} {name:>34}: " + "  ".join(f"{k} {v:.3f}" for k, v in s.items()))

# %% [markdown]
# ## What we measured on this model (N = 2,000 per point, DDIM T = 10, the card's default; see docs/results.md)
# The model predicts v (issue #25) and was trained for 15,000 steps on one CPU core.
#
# **Saturation rises with $w$, as the paper says, and passes the data's level.** Mean HSV saturation goes from 0.23 at
# $w = 0$ to 0.30 at $w = 2$, 0.32 at $w = 3$ and 0.35 at $w = 8$; the held-out emoji sit at 0.295. Unguided samples
# start a little paler than the data (79 % of its saturation), so guidance first brings the colours up to the data's
# level and then, from $w \approx 2$, carries them past it: the paper's over-saturation, in its honest form.
#
# **Fidelity rises, and FID dips at a small $w$, as on ImageNet.** Class accuracy by our emoji classifier rises from
# 65 % to 93 % at $w = 3$ (real emoji: 74 %) and IS from 4.0 to 6.2; FID falls from 87.3 at $w = 0$ to its minimum
# 84.2 at $w = 0.3$ and rises from $w = 1$ on (134 at $w = 3$): a little guidance sharpens the samples, more of it
# trades diversity for fidelity. The paper's ImageNet figures have the same shape (FID 1.80 at $w = 0$, 1.55 at
# $w = 0.1$).
#
# **Truncation fails outright with DDIM.** Truncating or cooling DDIM's initial noise (which, like a GAN latent, fixes
# the sample) makes paler, blander tiles: FID 165 at threshold 2 and 239 at temperature 0.8, against 87 untruncated.
# This is the paper's motivation in its strongest form: the diffusion model needs guidance, not truncation.
