"""Input validation: every bad value becomes a gr.Error with a clear message, before any work starts."""
from __future__ import annotations

import math

import gradio as gr

from core.sampling import MAX_STEPS, SAMPLERS

W_MIN, W_MAX = -1.0, 20.0
MAX_SEEDS = 64
MAX_W_VALUES = 16
MAX_GRID_SAMPLES = 512  # memory cap: n_w × n_seeds per request (≈ 60 MB of activations per chunk set on CPU)
MAX_CURVE_N = 2000
MAX_CURVE_POINTS = 12
SEED_MAX = 2**31 - 1


def _number(value, name: str) -> float:
    if isinstance(value, bool):
        raise gr.Error(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise gr.Error(f"{name} must be a finite number, got {value!r}")
    return x


def check_w(value) -> float:
    """A guidance weight in [−1, 20] (w = −1 is the unconditional model)."""
    w = _number(value, "w")
    if not W_MIN <= w <= W_MAX:
        raise gr.Error(f"w must be between {W_MIN:g} and {W_MAX:g}, got {w:g}")
    return w


def check_int(value, name: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; 2.5 or 'x' is refused, 3.0 is accepted."""
    x = _number(value, name)
    if x != int(x):
        raise gr.Error(f"{name} must be a whole number, got {value!r}")
    x = int(x)
    if not lo <= x <= hi:
        raise gr.Error(f"{name} must be between {lo} and {hi}, got {x}")
    return x


def check_steps(value) -> int:
    """Sampling steps T in [1, MAX_STEPS] (the paper uses T = 256)."""
    return check_int(value, "steps", 1, MAX_STEPS)


def check_seed(value) -> int:
    """A seed in [0, 2^31 − 1]."""
    return check_int(value, "seed", 0, SEED_MAX)


def check_class(value, num_classes: int) -> int:
    """A class 0..K−1 of the selected model."""
    return check_int(value, "class", 0, num_classes - 1)


def check_model(value, names: list[str]) -> str:
    """The name of a shipped model."""
    if value not in names:
        raise gr.Error(f"unknown model {value!r}: choose one of {', '.join(names)}")
    return value


def check_n_seeds(value) -> int:
    """How many seeds (columns/rows) in one request."""
    return check_int(value, "number of seeds", 1, MAX_SEEDS)


def check_sampler(value) -> str:
    """One of core.sampling.SAMPLERS."""
    if value not in SAMPLERS:
        raise gr.Error(f"unknown sampler {value!r}: choose {' or '.join(repr(s) for s in SAMPLERS)}")
    return value


def check_unit(value, name: str) -> float:
    """A number in [0, 1]; the message names the parameter."""
    x = _number(value, name)
    if not 0.0 <= x <= 1.0:
        raise gr.Error(f"{name} must be between 0 and 1, got {x:g}")
    return x


def check_range(value, name: str, lo: float, hi: float) -> float:
    """A number in [lo, hi]; the message names the parameter."""
    x = _number(value, name)
    if not lo <= x <= hi:
        raise gr.Error(f"{name} must be between {lo:g} and {hi:g}, got {x:g}")
    return x


def check_v(value) -> float:
    """The ancestral sampler's variance interpolation v ∈ [0, 1]."""
    return check_unit(value, "v")


def split_list(text) -> list:
    """The items of a comma / semicolon / space separated list (a list or tuple is taken as it is)."""
    if isinstance(text, (list, tuple)):
        return list(text)
    return [t for t in str(text if text is not None else "").replace(";", ",").replace(" ", ",").split(",") if t.strip()]


def parse_w_list(text, max_values: int = MAX_W_VALUES) -> list[float]:
    """A comma/space separated list of w values, each in [−1, 20]."""
    items = split_list(text)
    if not items:
        raise gr.Error("the w list is empty: give at least one value, e.g. 0, 1, 3")
    if len(items) > max_values:
        raise gr.Error(f"too many w values ({len(items)}); at most {max_values}")
    return [check_w(t) for t in items]


def parse_scale_list(text, name: str, max_values: int = 6) -> list[float]:
    """A list of 1 to max_values numbers in [0, 1] (e.g. CFG++ scales)."""
    items = split_list(text)
    if not items or len(items) > max_values:
        raise gr.Error(f"give 1 to {max_values} {name}s in [0, 1], e.g. 0.2, 0.6, 1")
    return [check_unit(t, name) for t in items]


def check_threshold(value) -> float:
    """A truncation threshold > 0."""
    t = _number(value, "truncation threshold")
    if not t > 0:
        raise gr.Error(f"truncation threshold must be > 0, got {t:g}")
    if t > 10:
        raise gr.Error(f"truncation threshold must be ≤ 10, got {t:g}")
    return t


def check_grid_size(n_w: int, n_seeds: int) -> None:
    """Refuse a batch above the memory cap before any work starts."""
    if n_w * n_seeds > MAX_GRID_SAMPLES:
        raise gr.Error(f"{n_w} w values × {n_seeds} seeds = {n_w * n_seeds} samples exceeds the cap of {MAX_GRID_SAMPLES} per request")


def check_curve_n(value) -> int:
    """Samples per w for the live curves."""
    return check_int(value, "N (samples per w)", 10, MAX_CURVE_N)
