"""Shared header for benchmark scripts: machine, torch version, thread count."""
import os
import platform

import torch


def header(title: str) -> None:
    """Print what the numbers below were measured on."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# {title}")
    print(f"# machine: {platform.node()} {platform.machine()} {cpu}, {os.cpu_count()} logical CPUs")
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}")


def naive_grid(model, seeds: list[int], labels: list[int], ws: list[float], steps: int, device: str = "cpu"):
    """The reference repos' loop: one w at a time, two separate forward passes per step (DDIM)."""
    from core.guidance import EpsOut, cfg_combine
    from core.noise import SeededNoise
    from core.sampling import run_sampler

    cfg = model.cfg
    outs = []
    for w in ws:
        noise = SeededNoise(seeds, (cfg.in_channels, cfg.image_size, cfg.image_size), device=device)
        c = torch.tensor(labels, device=device)
        null = torch.full_like(c, cfg.null_label)
        w_rows = torch.full((len(seeds),), float(w), device=device)

        def den(z, lam, c=c, null=null, w_rows=w_rows):
            lt = torch.full((z.shape[0],), lam, device=z.device)
            e_c = model(z, lt, c)
            e_u = model(z, lt, null)
            return EpsOut(cfg_combine(e_c, e_u, w_rows), e_c, e_u)

        outs.append(run_sampler("ddim", den, noise, steps))
    return torch.stack(outs)
