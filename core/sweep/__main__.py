"""The sweep CLI: FID / IS / KID versus w, one CSV row per point (sharded across ranks under torchrun).

    python -m core.sweep --model digits --w 0 0.1 0.3 0.5 1 2 4 --n 500 --steps 32 --out curves.csv
    torchrun --nproc_per_node=R -m core.sweep … --samples 50000 --steps 256
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from core import distributed
from core.checkpoint import ASSETS
from core.cli import Parser, add_method_args, method_options, run
from core.metrics import feature_stats
from core.registry import DEFAULT_MODEL, model_card
from core.sampling import DEFAULT_V, SAMPLERS
from core.sweep import (SweepConfig, merge_rows, parse_points, read_csv_rows, sharded_sweep, sweep_stream,
                        write_csv)


def parser() -> Parser:
    """The sweep CLI's arguments."""
    ap = Parser(prog="python -m core.sweep", description=__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a shipped model's name (see core.registry)")
    ap.add_argument("--assets", type=Path, default=ASSETS, help="the folder of model assets")
    ap.add_argument("--w", type=float, nargs="+", default=[0, 0.1, 0.3, 0.5, 1, 2, 4])
    ap.add_argument("--truncation", type=float, nargs="*", default=[])
    ap.add_argument("--temperature", type=float, nargs="*", default=[])
    ap.add_argument("--n", "--samples", dest="n", type=int, default=500, help="samples per point (--samples under torchrun)")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--sampler", choices=SAMPLERS, default=None, help="default: the model card's default_sampler")
    ap.add_argument("--v", type=float, default=DEFAULT_V)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--inception", type=Path, default=None, help="local inception-2015-12-05.pt; default: the model's classifier")
    ap.add_argument("--out", type=Path, default=Path("curves.csv"))
    ap.add_argument("--chunk", type=int, default=None, help="fixed network batch (default 16 on CPU, 256 on CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (with CUDA graphs on a GPU)")
    ap.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="autocast the network on CUDA")
    ap.add_argument("--append", action="store_true",
                    help="keep --out's other rows (a row with the same label is replaced): one CSV for several methods")
    add_method_args(ap)
    return ap


def main(argv: list[str] | None = None) -> None:
    """CLI: run a sweep with a progress bar and write one CSV row per point (sharded when launched by torchrun)."""
    from tqdm import tqdm

    ap = parser()
    a = ap.parse_args(argv)
    opts = replace(method_options(a), amp_dtype=a.amp)
    a.sampler = a.sampler or model_card(a.model, a.assets).default_sampler
    cfg = SweepConfig(tuple(parse_points(a.w, a.truncation, a.temperature)), a.n, a.steps, a.sampler, a.v, a.batch,
                      first_batch=None, opts=opts)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: shard the seeds across ranks
        _main_distributed(a, cfg)
        return
    pipe = _load(a.device, a)
    features, ref = pipe.features, pipe.ref
    if a.inception:  # reference statistics of the model's real training data, through the same Inception network
        from core.data import load_split
        from core.metrics import InceptionFeatures

        features = InceptionFeatures(a.inception, pipe.device)
        f_real, _ = features(load_split("train", pipe.card.dataset)[0])
        mu, sigma = feature_stats(f_real)
        ref = {"mu": mu, "sigma": sigma, "features": f_real}
    kept = _kept_rows(a)
    bar = tqdm(total=a.n, desc=f"sweep {len(cfg.points)} points × N={a.n}")
    last = None
    for upd in sweep_stream(pipe.model, features, ref, cfg, pipe.guide_for(a.method)):
        bar.update(upd.done - bar.n)
        write_csv(a.out, merge_rows(kept, upd.rows()))  # partial results survive an interrupted run
        last = upd
    bar.close()
    _report(a, last.rows(), last.elapsed, kept)


def _load(device: str, a):
    """The pipeline with the CLI's chunk, compiled when asked (mode reduce-overhead = CUDA graphs on a GPU)."""
    from core.pipeline import load_pipeline

    pipe = load_pipeline(a.model, device, a.assets, chunk=a.chunk)
    if a.compile:
        mode = "reduce-overhead" if pipe.device.type == "cuda" else None
        print(f"torch.compile ({mode or 'default'}): {pipe.model.enable_compile(mode=mode)}", flush=True)
    return pipe


def _kept_rows(a) -> list[dict]:
    """With --append, the rows already in --out (merge_rows replaces those the sweep writes again); else none."""
    return read_csv_rows(a.out) if a.append and a.out.is_file() else []


def _report(a, rows: list[dict], elapsed: float, kept: list[dict]) -> None:
    write_csv(a.out, merge_rows(kept, rows))
    for r in rows:
        sat = f"  saturation {r['mean_saturation']:.3f}" if r["mean_saturation"] != "" else ""
        print(f"{r['label']:>14}  FID {r['FID']:8.3f}  IS {r['IS']:6.3f} ± {r['IS_std']:.3f}  KID {r['KID']:.4f}  "
              f"accuracy {r['accuracy']:.3f}{sat}  N {r['N']}  {r['seconds']:.1f}s")
    print(f"wrote {a.out} in {elapsed:.1f} s")


def _main_distributed(a, cfg: SweepConfig) -> None:
    """torchrun path: every rank samples its block of seeds; rank 0 computes the metrics and writes the CSV."""
    if a.inception:
        raise ValueError("--inception is not supported under torchrun yet: run the Inception sweep as one process "
                         "(python -m core.sweep --inception …)")
    rank, world, dev = distributed.init_from_env()
    pipe = _load(str(dev), a)
    t = time.perf_counter()
    results = sharded_sweep(pipe.model, pipe.features, pipe.ref, cfg, pipe.guide_for(a.method))
    if rank == 0:
        _report(a, [r.row(a.steps, a.sampler, cfg.opts) for r in results], time.perf_counter() - t, _kept_rows(a))
    distributed.finish()


if __name__ == "__main__":
    run(main)
