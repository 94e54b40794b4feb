"""A small class-conditional UNet ε_θ(z_λ, λ, c) with an explicit null label (paper Sec. 3.2, Alg. 1)."""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from core.diffusion import LOGSNR_MAX, LOGSNR_MIN, PREDICTIONS, eps_from_output, input_scale


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of ε_θ; saved as JSON next to the weights."""

    image_size: int = 28
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 64)
    num_res_blocks: int = 1
    attention_at_bottom: bool = True
    num_classes: int = 10
    emb_dim: int = 128
    groups: int = 8
    dropout: float = 0.0
    logsnr_min: float = LOGSNR_MIN  # the cosine schedule's range, in training and sampling
    logsnr_max: float = LOGSNR_MAX
    prediction: str = "eps"  # the raw output: "eps", "v" or "edm" (core.diffusion.eps_from_output turns it into ε)
    sigma_data: float = 0.5  # EDM's σ_data (prediction "edm" only)

    @property
    def logsnr_range(self) -> tuple[float, float]:
        return (self.logsnr_min, self.logsnr_max)

    @property
    def null_label(self) -> int:
        """The explicit null token ∅ = K used for the unconditional model."""
        return self.num_classes

    def to_json(self) -> str:
        """Serialise to JSON (tuples become lists)."""
        return json.dumps(asdict(self), indent=2)

    @staticmethod
    def from_dict(d: dict) -> "UNetConfig":
        """Inverse of to_json / asdict."""
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return UNetConfig(**d)

    def __post_init__(self):
        assert self.prediction in PREDICTIONS, self.prediction


def logsnr_embedding(logsnr: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of the log-SNR, rescaled from [−20, 20] to roughly [0, 1000] (VDM style)."""
    half = dim // 2
    t = (logsnr.float() + 20.0) * 25.0
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=logsnr.device, dtype=torch.float32) / half)
    args = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        out = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        out = self.norm2(out) * (1.0 + scale) + shift
        out = self.conv2(self.drop(F.silu(out)))
        return self.skip(h) + out


class Attention(nn.Module):
    def __init__(self, ch: int, groups: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.heads = heads

    def forward(self, h: Tensor) -> Tensor:
        b, c, hh, ww = h.shape
        q, k, v = self.qkv(self.norm(h)).reshape(b, 3, self.heads, c // self.heads, hh * ww).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return h + self.proj(out.transpose(-1, -2).reshape(b, c, hh, ww))


class UNet(nn.Module):
    """ε_θ(z_λ, λ, c): labels 0..K−1, plus the null label K for ε_θ(z_λ) (paper Alg. 1)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch, e = cfg.channels, cfg.emb_dim
        self.emb_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.label_emb = nn.Embedding(cfg.num_classes + 1, e)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [ch[0]]
        cur = ch[0]
        for lvl, c in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(cur, c, e, cfg.groups, cfg.dropout))
                cur = c
                skips.append(cur)
            self.down.append(blocks)
            if lvl < len(ch) - 1:
                self.downsample.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
        self.mid1 = ResBlock(cur, cur, e, cfg.groups, cfg.dropout)
        self.mid_attn = Attention(cur, cfg.groups) if cfg.attention_at_bottom else nn.Identity()
        self.mid2 = ResBlock(cur, cur, e, cfg.groups, cfg.dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl, c in reversed(list(enumerate(ch))):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(cur + skips.pop(), c, e, cfg.groups, cfg.dropout))
                cur = c
            self.up.append(blocks)
            if lvl > 0:
                self.upsample.append(nn.Conv2d(cur, cur, 3, padding=1))
        self.norm_out = nn.GroupNorm(cfg.groups, cur)
        self.conv_out = nn.Conv2d(cur, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, z: Tensor, logsnr: Tensor, c: Tensor) -> Tensor:
        """Predict ε from z_λ (B, C, H, W), λ (B,) and integer labels c (B,) in 0..K (K = null)."""
        cfg = self.cfg
        return eps_from_output(z, self.raw(z, logsnr, c), logsnr, cfg.prediction, cfg.sigma_data)

    def raw(self, z: Tensor, logsnr: Tensor, c: Tensor) -> Tensor:
        """The network's own output (ε, v or EDM's F, as cfg.prediction says), before the conversion to ε."""
        cfg = self.cfg
        assert z.dim() == 4 and z.shape[1:] == (cfg.in_channels, cfg.image_size, cfg.image_size), z.shape
        assert logsnr.shape == (z.shape[0],) and c.shape == (z.shape[0],), (logsnr.shape, c.shape)
        scale = input_scale(logsnr, cfg.prediction, cfg.sigma_data)
        if scale is not None:
            z = z * scale.to(z.dtype)[:, None, None, None]
        emb = self.emb_mlp(logsnr_embedding(logsnr, cfg.emb_dim).to(z.dtype)) + self.label_emb(c)
        emb = F.silu(emb)
        h = self.conv_in(z)
        hs = [h]
        for lvl, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb)
                hs.append(h)
            if lvl < len(self.downsample):
                h = self.downsample[lvl](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, blocks in enumerate(self.up):
            for blk in blocks:
                h = blk(torch.cat([h, hs.pop()], dim=1), emb)
            if i < len(self.upsample):
                target = hs[-1].shape[-2:]
                h = self.upsample[i](F.interpolate(h, size=target, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


@dataclass(frozen=True)
class CompiledNet:
    """A compiled inner network (torch.compile's module or an AOTInductor package), kept out of the module tree so
    it never enters the state dict; cuda_graphs marks CUDA-graph replays, whose output buffer is reused."""

    fn: object
    cuda_graphs: bool = False


class FixedBatch(nn.Module):
    """Runs a model in fixed-size chunks (padding the last), so each sample's ε is bitwise independent of the batch.

    oneDNN/cuBLAS pick kernels by batch size, which changes the low bits; a fixed chunk pins the kernel. A fixed
    shape is also what torch.compile likes: enable_compile() compiles the inner model once, for that one shape.
    """

    def __init__(self, model: UNet, chunk: int = 16):
        super().__init__()
        assert chunk >= 1, chunk
        self.inner = model
        self.chunk = chunk
        self.cfg = model.cfg
        self.runner = CompiledNet(None)  # set by enable_compile() / use_compiled(); fn None = eager

    def enable_compile(self, swap_lock=None, mode: str | None = None) -> str:
        """Compile the inner model for the chunk shape and warm it up; returns 'compiled' or 'eager (<reason>)'.

        mode is torch.compile's (e.g. "reduce-overhead" = CUDA graphs on a GPU). The swap happens under swap_lock
        (when given), so a sampling run holding it never mixes eager and compiled.
        """
        try:
            fn = torch.compile(self.inner, dynamic=False, mode=mode)
            p = next(self.inner.parameters())
            with torch.inference_mode():  # inference-tensor inputs, as forward() passes them
                z = torch.zeros(self.chunk, self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size, device=p.device)
                fn(z, torch.zeros(self.chunk, device=p.device), torch.zeros(self.chunk, dtype=torch.long, device=p.device))
        except Exception as e:  # no C++ compiler, unsupported platform, …: stay eager
            return f"eager ({type(e).__name__}: {str(e)[:120]})"
        self.use_compiled(fn, swap_lock, cuda_graphs=mode is not None and "reduce-overhead" in mode and p.device.type == "cuda")
        return "compiled"

    def use_compiled(self, fn, swap_lock=None, cuda_graphs: bool = False) -> None:
        """Run the chunks through fn (a compiled inner model: torch.compile's or an AOTInductor package's), swapping it
        in under swap_lock when given."""
        with swap_lock if swap_lock is not None else contextlib.nullcontext():
            self.runner = CompiledNet(fn, cuda_graphs)

    @property
    def compiled(self):
        """The compiled network the chunks run through, or None (eager)."""
        return self.runner.fn

    def forward(self, z: Tensor, logsnr: Tensor, c: Tensor) -> Tensor:
        b, k = z.shape[0], self.chunk
        pad = (-b) % k
        if pad:
            z = torch.cat([z, z[:1].expand(pad, *z.shape[1:])])
            logsnr = torch.cat([logsnr, logsnr[:1].expand(pad)])
            c = torch.cat([c, c[:1].expand(pad)])
        runner = self.runner  # one read: a concurrent swap cannot mix eager and compiled chunks
        net = runner.fn if runner.fn is not None else self.inner
        out = None
        with torch.inference_mode() if runner.fn is not None else contextlib.nullcontext():
            if runner.fn is not None:  # inference tensors throughout, as at warm-up: a normal tensor's dispatch
                z, logsnr, c = (t if t.is_inference() else t.clone() for t in (z, logsnr, c))  # keys would recompile
            for i in range(0, z.shape[0], k):
                if runner.cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()  # the graph's output buffer is reused by the next replay
                eps = net(z[i:i + k], logsnr[i:i + k], c[i:i + k])
                if out is None:
                    out = eps.new_empty((z.shape[0], *eps.shape[1:]))
                out[i:i + k] = eps  # copied out at once, before a replay can overwrite it
        return out[:b]
