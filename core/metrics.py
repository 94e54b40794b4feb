"""Sample-quality metrics in numpy float64: FID (Heusel et al. 2017), IS (Salimans et al. 2016), KID (Bińkowski et al. 2018).

Features come from the project's digit classifier (the stand-in for Inception), or from the standard
FID Inception network when the user supplies its weights file locally (nothing is ever downloaded).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.cli import Parser, run



def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr √(√Σ1 Σ2 √Σ1), via eigh with tiny negative eigenvalues clipped."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    assert mu1.shape == mu2.shape and s1.shape == s2.shape == (mu1.size, mu1.size), (mu1.shape, s1.shape, s2.shape)
    vals, vecs = np.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    m = sqrt_s1 @ s2 @ sqrt_s1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) of features (N, d), float64, with the unbiased covariance."""
    f = np.asarray(feats, np.float64)
    assert f.ndim == 2 and f.shape[0] >= 2, f.shape
    return f.mean(0), np.cov(f, rowvar=False)


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) ‖ p(y))) per split; returns (mean, std) over splits."""
    p = np.asarray(probs, np.float64)
    assert p.ndim == 2, p.shape
    splits = max(1, min(splits, p.shape[0]))
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(py, 1e-12, None)))).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def kernel_inception_distance(f_gen: np.ndarray, f_real: np.ndarray, subsets: int = 50, subset_size: int = 500,
                              seed: int = 0, scale: float = 1.0) -> tuple[float, float]:
    """KID: unbiased MMD² with k(x, y) = (x·y/d + 1)³ on features / scale, averaged over random subsets; (mean, std).

    Each subset pairs a bootstrap resample of the generated features (pairs of one sample with itself left out of the
    within-set term, so it stays unbiased) with real features drawn without replacement. The std therefore holds the
    generated samples' own noise too, also when there are fewer of them than subset_size.
    """
    a, b = np.asarray(f_gen, np.float64), np.asarray(f_real, np.float64)
    assert a.ndim == b.ndim == 2 and a.shape[1] == b.shape[1], (a.shape, b.shape)
    d = a.shape[1]
    m, n = min(subset_size, a.shape[0]), min(subset_size, b.shape[0])  # generated and real per subset
    if min(m, n) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []

    def cubic(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        k = u @ v.T / (d * scale * scale) + 1.0
        return k * k * k  # (numpy's ** 3 is a slow pow call)

    for _ in range(subsets):
        ix = rng.integers(0, a.shape[0], m)  # 1. a bootstrap resample of the generated samples
        x, y = a[ix], b[rng.choice(b.shape[0], n, replace=False)]
        distinct = ix[:, None] != ix[None, :]  # 2. pairs of two different samples only
        kxx, kyy, kxy = cubic(x, x), cubic(y, y), cubic(x, y)
        within_x = kxx[distinct].sum() / max(1, distinct.sum())
        vals.append(within_x + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())
    return float(np.mean(vals)), float(np.std(vals))


@torch.inference_mode()
def classifier_features(classifier: torch.nn.Module, x: Tensor, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, d), softmax probabilities (N, K)) of images x (N, C, H, W) in [−1, 1], clipped first."""
    assert x.dim() == 4, x.shape
    dev = next(classifier.parameters()).device
    feats, probs = [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].to(dev).float().clamp(-1, 1)
        f = classifier.features(xb)
        feats.append(f.double().cpu().numpy())
        probs.append(torch.softmax(classifier.head(f).double(), 1).cpu().numpy())
    return np.concatenate(feats), np.concatenate(probs)


class InceptionFeatures:
    """The standard FID Inception-v3 (2015-12-05) from a *local* TorchScript file, e.g. inception-2015-12-05.pt.

    Nothing is downloaded: a missing file is a clear error. Grayscale images are replicated to RGB, and every image is
    resized to 299×299 inside the network, as the FID reference implementations do.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(
                f"Inception weights not found at {p}. FID/IS with Inception needs the standard FID network "
                "(inception-2015-12-05.pt, TorchScript) as a local file; nothing is downloaded. "
                "Without it, use the built-in digit classifier (features='classifier').")
        if p.suffix == ".pth":
            raise ValueError(f"{p} is a bare state dict (pt_inception-*.pth); this path needs the TorchScript export "
                             "inception-2015-12-05.pt of the same weights")
        self.net = torch.jit.load(str(p), map_location=device).eval()
        self.device = torch.device(device)

    @torch.inference_mode()
    def __call__(self, x: Tensor, batch: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """(2048-d pool features, 1008-way softmax) of images in [−1, 1], (N, C, H, W) with C ∈ {1, 3}."""
        feats, probs = [], []
        for i in range(0, x.shape[0], batch):
            xb = x[i:i + batch].to(self.device).float().clamp(-1, 1)
            if xb.shape[1] == 1:
                xb = xb.expand(-1, 3, -1, -1)
            u8 = ((xb + 1) * 127.5).round().to(torch.uint8)
            feats.append(self.net(u8, return_features=True).double().cpu().numpy())
            logits = self.net(u8, return_features=False)
            probs.append(torch.softmax(logits.double(), 1).cpu().numpy())
        return np.concatenate(feats), np.concatenate(probs)


def kid_scale(ref_features: np.ndarray) -> float:
    """RMS of the reference features: our classifier's features are ~5× Inception's scale, so KID divides by it."""
    return float(np.sqrt(np.mean(np.asarray(ref_features, np.float64) ** 2)))


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each class's accuracy (argmax of probs (N, K) against labels (N,)), shape (K,); NaN for a class with no samples."""
    assert probs.ndim == 2 and labels.shape == (len(probs),), (probs.shape, labels.shape)
    hit = probs.argmax(1) == labels
    return np.array([hit[labels == k].mean() if (labels == k).any() else np.nan for k in range(probs.shape[1])])


def class_balanced_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """The mean of the per-class accuracies (over classes present): what "100 samples per class" measures, and the
    fair reading of a held-out set whose classes differ in size."""
    return float(np.nanmean(per_class_accuracy(probs, labels)))


def too_close_share(samples: np.ndarray, train: np.ndarray, heldout: np.ndarray, q: float = 5.0) -> float:
    """Memorisation: the share of samples whose nearest training point is closer than the q-th percentile of the
    held-out points' nearest-training distances (L2 over flattened rows; about q / 100 for a model that draws new
    images as the held-out data are new, 1 for one that copies its training set)."""
    assert samples.ndim == train.ndim == heldout.ndim == 2, (samples.shape, train.shape, heldout.shape)

    ref = torch.as_tensor(train, dtype=torch.float64)

    def nearest(x: np.ndarray) -> np.ndarray:
        return torch.cdist(torch.as_tensor(x, dtype=torch.float64), ref).amin(1).numpy()

    return float((nearest(samples) < np.percentile(nearest(heldout), q)).mean())


def colour_stats(images: np.ndarray) -> dict[str, float]:
    """Colour saturation of uint8 RGB images (N, H, W, 3), as the paper's "saturated colours" claim needs measuring:

    mean_saturation: mean HSV saturation S = (max − min) / max over all pixels (0 for black);
    saturated_share: the share of pixels with S > 0.9;
    colourfulness: Hasler & Süsstrunk (2003), σ_rgyb + 0.3 μ_rgyb with rg = R − G, yb = (R + G)/2 − B, per image, averaged;
    clipped_share: the share of channel values at 0 or 255.
    """
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3, (images.shape, images.dtype)
    x = images.astype(np.float64)
    hi, lo = x.max(-1), x.min(-1)
    sat = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-12), 0.0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg, yb = (r - g).reshape(len(x), -1), (0.5 * (r + g) - b).reshape(len(x), -1)
    colourful = np.sqrt(rg.std(1) ** 2 + yb.std(1) ** 2) + 0.3 * np.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return {"mean_saturation": float(sat.mean()), "saturated_share": float((sat > 0.9).mean()),
            "colourfulness": float(colourful.mean()), "clipped_share": float(((images == 0) | (images == 255)).mean())}


def prepare_ref(ref: dict) -> dict:
    """Reference statistics to compare against, with their KID feature scale."""
    ref = dict(ref)
    ref.setdefault("kid_scale", kid_scale(ref["features"]))
    return ref


def compute_ref_stats(classifier: torch.nn.Module, dataset: str, ref_split: str = "train") -> dict[str, np.ndarray]:
    """Reference statistics (μ, Σ, features) of the real images of ref_split, and the held-out images' scores against
    them (with ref_split = "heldout", the held-out images are the reference: images the model never saw)."""
    from core.data import load_split

    x_tr, _ = load_split(ref_split, dataset)
    x_he, _ = load_split("heldout", dataset)
    f_tr, _ = classifier_features(classifier, x_tr)
    f_he, p_he = classifier_features(classifier, x_he)
    mu, sigma = feature_stats(f_tr)
    mu_h, sigma_h = feature_stats(f_he)
    is_h = inception_score(p_he, splits=1)[0]
    return {"mu": mu, "sigma": sigma, "features": f_tr.astype(np.float32),
            "heldout_fid": np.float64(frechet_distance(mu_h, sigma_h, mu, sigma)),
            "heldout_is": np.float64(is_h),
            "heldout_kid": np.float64(kernel_inception_distance(f_he, f_tr, scale=kid_scale(f_tr))[0]),
            "n_heldout": np.int64(x_he.shape[0])}


def load_ref_stats(path: Path) -> dict[str, np.ndarray]:
    """A model's shipped reference statistics (no pickles)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"missing reference statistics {path}: run `python -m core.metrics --write-ref`")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def main(argv: list[str] | None = None) -> None:
    """`python -m core.metrics --write-ref --model NAME` regenerates assets/NAME_ref_stats.npz from its classifier."""
    import time

    from core.checkpoint import load_model
    from core.registry import DEFAULT_MODEL, model_card

    ap = Parser(description=main.__doc__)
    ap.add_argument("--write-ref", action="store_true")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=None, help="default: the model's ref_stats path in assets/")
    ap.add_argument("--ref-split", choices=["train", "heldout"], default="train", help="the real images to compare with")
    a = ap.parse_args(argv)
    if a.write_ref:
        card = model_card(a.model)
        out = a.out or card.ref_stats_path
        t = time.time()
        stats = compute_ref_stats(load_model(card.stem("classifier")), card.dataset, a.ref_split)
        np.savez_compressed(out, **stats)
        print(f"wrote {out} in {time.time() - t:.1f} s: held-out FID {float(stats['heldout_fid']):.3f}, "
              f"IS {float(stats['heldout_is']):.3f}, KID {float(stats['heldout_kid']):.5f}")


if __name__ == "__main__":
    run(main)
