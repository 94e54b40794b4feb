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
# # 2. Classifier-free guidance
# One network learns $\epsilon_\theta(z_\lambda, c)$ and $\epsilon_\theta(z_\lambda) = \epsilon_\theta(z_\lambda, \varnothing)$
# jointly: the label is replaced by the null token with probability $p_{\text{uncond}} = 0.1$. Sampling uses
# $\tilde\epsilon = (1+w)\,\epsilon_\theta(z_\lambda, c) - w\,\epsilon_\theta(z_\lambda)$.

# %%
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
import matplotlib.pyplot as plt
import numpy as np
import torch

from core.data import to_uint8
from core.diffusion import alpha_sigma
from core.guidance import CFGDenoiser, GuidanceOptions, implicit_classifier_grad
from core.noise import SeededNoise
from core.pipeline import load_pipeline
from core.sampling import SamplerConfig, generate
from core.train import diffusion_loss
from core.unet import UNet, UNetConfig

SMALL = os.environ.get("SMALL", "0") == "1"
TRAIN_STEPS = 60 if SMALL else 400
STEPS = 8 if SMALL else 32
pipe = load_pipeline()

# %% [markdown]
# ## Joint training, in miniature
# A tiny UNet trained for a few hundred steps on synthetic "digits" (random strokes stand in for the data, so the
# notebook needs no data package). Note `p_uncond=0.1` in `diffusion_loss`: that single line is the whole recipe.

# %%
torch.manual_seed(0)
tiny = UNet(UNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, attention_at_bottom=False))
opt = torch.optim.Adam(tiny.parameters(), lr=2e-3)
g = torch.Generator().manual_seed(0)
x = -torch.ones(256, 1, 28, 28)
c = torch.arange(256) % 10
for i in range(256):  # class k = a vertical bar at column 2 + 2k
    x[i, 0, 4:24, 2 + 2 * int(c[i]): 4 + 2 * int(c[i])] = 1.0
losses = []
for step in range(TRAIN_STEPS):
    idx = torch.randint(0, 256, (64,), generator=g)
    loss = diffusion_loss(tiny, x[idx], c[idx], p_uncond=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
plt.plot(losses)
plt.xlabel("step")
plt.ylabel("‖ε_θ − ε‖²")
plt.title("joint conditional + unconditional training")
assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), "the tiny model's loss should fall during training"

# %% [markdown]
# ## The implicit classifier, checked numerically on the shipped model
# $\nabla_z \log p^i(c \mid z_\lambda) = -(\epsilon(z,c) - \epsilon(z))/\sigma_\lambda$. Classifier guidance with this
# gradient, $\epsilon(z,c) - w\sigma_\lambda\nabla_z\log p^i$, must equal the CFG output.

# %%
z = SeededNoise([0, 1, 2, 3], (1, 28, 28)).initial() * 0.8
labels = torch.tensor([1, 4, 7, 9])
lam, w = 0.5, 2.0
out = CFGDenoiser(pipe.model, labels, torch.full((4,), w), pipe.model.cfg.null_label, GuidanceOptions(always_uncond=True))(z, lam)
sigma = alpha_sigma(torch.tensor(lam, dtype=torch.float64))[1].item()
cg = out.eps_cond - w * sigma * implicit_classifier_grad(out.eps_cond, out.eps_uncond, lam)
print("max |CFG − classifier guidance with p^i| =", (cg - out.eps).abs().max().item())
assert torch.allclose(cg, out.eps, atol=1e-5)
assert (out.eps - out.eps_cond).abs().max() > 0.1, "guidance should move ε, else the identity above is vacuous"

# %% [markdown]
# ## Same-seed grids across w
# Each row is one seed; only $w$ changes along it (the paper's Figure 3).

# %%
ws = [0.0, 0.5, 1.0, 3.0, 8.0]
seeds = list(range(6))
xg = generate(pipe.model, seeds, [s % 10 for s in seeds], ws, SamplerConfig("ddim", STEPS))
imgs = np.stack([to_uint8(xg[j]) for j in range(len(ws))])  # (w, seed, H, W)
fig, axes = plt.subplots(len(seeds), len(ws), figsize=(1.3 * len(ws), 1.3 * len(seeds)))
for i in range(len(seeds)):
    for j, wv in enumerate(ws):
        axes[i, j].imshow(imgs[j, i], cmap="gray")
        axes[i, j].axis("off")
        if i == 0:
            axes[i, j].set_title(f"w={wv:g}\ns={1 + wv:g}", fontsize=8)
