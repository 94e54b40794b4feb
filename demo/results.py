"""The shipped results, read: the precomputed sweeps of a model (core.sweep's CSVs, see docs/assets.md for the commands
that made them), grouped by family and by guidance method, and the findings the app quotes from them. demo.plots
draws them; nothing here draws."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.guidance import METHOD_TABLE, APGParams, method
from core.registry import ModelCard
from core.sweep import read_csv_rows


@dataclass(frozen=True)
class Sweep:
    """One sweep's CSV rows with the settings that made them, for legends: sampler, T and N."""

    name: str
    sampler: str
    steps: int
    n: int
    rows: list[dict]


def read_sweep(path: Path) -> Sweep:
    """A shipped sweep CSV (core.sweep's format; see README for the commands that made them)."""
    rows = read_csv_rows(path)
    for r in rows:
        for k in ("w", "s", "temperature", "FID", "IS", "IS_std", "KID", "KID_std", "N", "steps", "seconds"):
            r[k] = float(r[k])
        r["truncation"] = float(r["truncation"]) if r["truncation"] else None
    sampler, steps, n = rows[0]["sampler"], int(rows[0]["steps"]), int(max(r["N"] for r in rows))
    return Sweep(f"precomputed ({sampler}, T={steps}, N={n:,})", sampler, steps, n, rows)


def shipped_sweeps(card: ModelCard) -> list[Sweep]:
    """Every precomputed sweep of the model, DDIM first."""
    return sorted((read_sweep(p) for p in card.sweeps()), key=lambda s: (s.sampler != "ddim", s.steps))


def method_key(r: dict) -> str:
    """A sweep row's method key (sweeps written before methods existed have no method column: CFG)."""
    return r.get("method") or "cfg"


def is_cfg(r: dict) -> bool:
    return method_key(r) == "cfg"


def families(rows: list[dict]) -> dict[str, list[dict]]:
    """CFG's rows by w and its truncation / temperature baselines (other methods' rows are left to the Beyond tab)."""
    fam: dict[str, list[dict]] = {"CFG": [], "truncation": [], "temperature": []}
    for r in rows:
        if not is_cfg(r):
            continue
        if r["truncation"]:  # a threshold (None in a read CSV, "" in a live row when off)
            fam["truncation"].append(r)
        elif float(r["temperature"]) != 1.0:
            fam["temperature"].append(r)
        else:
            fam["CFG"].append(r)
    return fam


def method_name(r: dict) -> str:
    """A sweep row's method as the app names it; APG with other than the paper's defaults names its parameters."""
    m = method_key(r)
    if m != "apg":
        return method(m).label
    # GuidanceOptions.record writes r = 0 for no bound and clip_x as 0 / 1
    p = APGParams(float(r["apg_eta"]), float(r["apg_r"]) or None, float(r["apg_beta"]), r.get("apg_clip_x") == "1")
    return "APG" if p == APGParams() else f"APG ({p.describe(', ')})"


def shipped_method_rows(card: ModelCard) -> dict[str, list[dict]]:
    """The guidance-weight rows (no truncation, temperature 1) of the model's shipped DDIM sweeps, by method."""
    out: dict[str, list[dict]] = {}
    for sw in shipped_sweeps(card):
        if sw.sampler != "ddim":
            continue
        for r in sw.rows:
            if not r["truncation"] and r["temperature"] == 1.0:
                out.setdefault(method_name(r), []).append(r)
    return out


def shipped_method_saturation(shipped: dict[str, list[dict]]) -> dict[str, list[tuple[float, float, float]]]:
    """(w, accuracy, mean saturation) per method from shipped rows that have colour columns (RGB models)."""
    out = {}
    for name, rows in shipped.items():
        pts = sorted((float(r["w"]), float(r["accuracy"]), float(r["mean_saturation"])) for r in rows
                     if r.get("mean_saturation") not in (None, "") and r.get("accuracy") not in (None, ""))
        if pts:
            out[name] = pts
    return out


def _pct(r: dict) -> str:
    return f"{100 * float(r['accuracy']):.1f} %" if r.get("accuracy") not in (None, "") else "n/a"


def _quality(r: dict) -> str:
    """A row's class accuracy, and its mean saturation where the row has one (RGB models)."""
    sat = r.get("mean_saturation")
    return f"accuracy {_pct(r)}" + (f", saturation {float(sat):.2f}" if sat not in (None, "") else "")


def method_findings(shipped: dict[str, dict[str, list[dict]]], family: str) -> str:
    """One method family's numbers from the shipped sweeps of each model ({model: shipped_method_rows}): its best FID
    against CFG's, and its accuracy (saturation) at its smallest and largest w, with CFG's at that largest w."""
    wname = next(m.weight for m in METHOD_TABLE if m.label == family)
    parts = []
    for model, by_method in shipped.items():
        cfg = by_method.get("CFG", [])
        for name, rows in by_method.items():
            if not rows or method(method_key(rows[0])).label != family:
                continue
            rows = sorted(rows, key=lambda r: float(r["w"]))
            best, lo, hi = min(rows, key=lambda r: float(r["FID"])), rows[0], rows[-1]
            text = f"{model}{name[len(family):]}: best FID {float(best['FID']):.3g} at {wname} = {float(best['w']):g}"
            if name != "CFG" and cfg:
                text += f" (CFG {min(float(r['FID']) for r in cfg):.3g})"
            text += f"; {wname} = {float(lo['w']):g}: {_quality(lo)}; {wname} = {float(hi['w']):g}: {_quality(hi)}"
            same_w = [r for r in cfg if float(r["w"]) == float(hi["w"])]
            if name != "CFG" and same_w:
                text += f" (CFG at w = {float(hi['w']):g}: {_quality(same_w[0])})"
            parts.append(text)
    return "<br>".join(parts) if parts else "not in the shipped sweeps"  # one line per model (a table cell)
