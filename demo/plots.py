"""Plotly figures and small image helpers for the UI (no model code here)."""
from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from PIL import Image

from core.guidance import METHOD_TABLE
from core.registry import ModelCard
from demo import results
from demo.results import Sweep


# Ho & Salimans (2021), Table 1: ImageNet 64×64, 50k samples per w, T = 256. Not our model.
PAPER_IMAGENET64 = [(0, 1.80, 53.71), (0.1, 1.55, 66.11), (0.2, 2.04, 78.91), (0.3, 3.03, 92.8), (0.4, 4.30, 106.2),
                    (0.5, 5.74, 119.3), (0.6, 7.19, 131.1), (0.7, 8.62, 141.8), (0.8, 10.08, 151.6), (0.9, 11.41, 161.0),
                    (1.0, 12.6, 170.1), (2.0, 21.03, 225.5), (3.0, 24.83, 250.4), (4.0, 26.22, 260.2)]


SWEEP_COLOURS = ["#1f77b4", "#7f7f7f", "#9467bd", "#8c564b"]
FAMILY_STYLE = {"CFG": ("circle", "solid"), "truncation": ("x", "dot"), "temperature": ("diamond", "dash")}


def spread_labels(points: list[tuple[float, float, str]], min_gap: float = 0.06) -> list[str]:
    """Each point's text, or "" where it would sit within min_gap (as a share of the axis ranges; y on a log scale) of a
    point already labelled, so labels never pile up; the hover text keeps every label."""
    if not points:
        return []
    xs = np.array([p[0] for p in points], float)
    ys = np.log10(np.maximum([p[1] for p in points], 1e-9))
    span_x, span_y = max(np.ptp(xs), 1e-9), max(np.ptp(ys), 1e-9)
    kept: list[int] = []
    out = []
    for i, (_, _, text) in enumerate(points):
        near = any(abs(xs[i] - xs[j]) / span_x < 2 * min_gap and abs(ys[i] - ys[j]) / span_y < min_gap for j in kept)
        out.append("" if near else text)
        if not near:
            kept.append(i)
    return out


def tradeoff_figure(sweeps: list[Sweep], card: ModelCard) -> go.Figure:
    """FID vs IS of CFG (by w) and of the truncation / temperature baselines, one colour per sweep (paper Fig. 2)."""
    fig = go.Figure()
    traces = []
    for k, sw in enumerate(sweeps):
        col = SWEEP_COLOURS[k % len(SWEEP_COLOURS)]
        for fam, rs in results.families(sw.rows).items():
            if rs:
                traces.append((fam, sw, col, sorted(rs, key=lambda r: (r["w"], -(r["truncation"] or 0), -r["temperature"]))))
    # Text only where it has room: the first sweep's points claim their places first.
    labels = iter(spread_labels([(r["IS"], r["FID"], r["label"]) for *_, rs in traces for r in rs]))
    for fam, sw, col, rs in traces:
        sym, dash = FAMILY_STYLE[fam]
        fig.add_trace(go.Scatter(x=[r["IS"] for r in rs], y=[r["FID"] for r in rs], mode="lines+markers+text",
                                 text=[next(labels) for _ in rs], hovertext=[r["label"] for r in rs],
                                 textposition="top center", name=f"{fam} · {sw.name}",
                                 marker=dict(symbol=sym, size=9, color=col), line=dict(color=col, dash=dash, width=1),
                                 error_x=dict(type="data", array=[r["IS_std"] for r in rs], visible=True)))
    # A log FID axis: collapsed truncation (FID in the hundreds or more) would otherwise flatten the CFG curves.
    fig.update_layout(title=f"{card.title}: FID vs IS, lower-right is better", xaxis_title="IS (our classifier) ↑",
                      yaxis_title="FID ↓ (log scale)", yaxis_type="log", height=480,
                      margin=dict(l=70, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def curves_figure(live: Sweep, shipped: list[Sweep], card: ModelCard) -> go.Figure:
    """FID, KID and IS vs w and FID vs IS (live and precomputed, each labelled with sampler, T and N) in a 2 × 2 grid,
    and the paper's ImageNet 64×64 table in its own column. The precomputed sweep made with the live run's sampler and
    T is drawn solid; others dotted."""
    fig = make_subplots(rows=2, cols=3, subplot_titles=("FID vs w", "KID vs w (unbiased)",
                                                          "ImageNet 64×64 (the paper)", "IS vs w",
                                                          "FID vs IS (paper Fig. 2)"),
                        specs=[[{}, {}, {"rowspan": 2, "secondary_y": True}], [{}, {}, None]],
                        horizontal_spacing=0.09, vertical_spacing=0.16)
    cells = {"FID": (1, 1), "KID": (1, 2), "IS": (2, 1), "plane": (2, 2), "paper": (1, 3)}

    def add(sw: Sweep, line: dict, group: str) -> None:
        rs = sorted(results.families(sw.rows)["CFG"], key=lambda r: r["w"])
        if not rs:
            return
        kw = dict(mode="lines+markers", line=line, legendgroup=group)
        w = [r["w"] for r in rs]
        fig.add_trace(go.Scatter(x=w, y=[r["FID"] for r in rs], name=sw.name, **kw), *cells["FID"])
        fig.add_trace(go.Scatter(x=w, y=[r["KID"] for r in rs], showlegend=False,
                                 error_y=dict(array=[r["KID_std"] for r in rs]), **kw), *cells["KID"])
        fig.add_trace(go.Scatter(x=w, y=[r["IS"] for r in rs], showlegend=False,
                                 error_y=dict(array=[r["IS_std"] for r in rs]), **kw), *cells["IS"])
        fig.add_trace(go.Scatter(x=[r["IS"] for r in rs], y=[r["FID"] for r in rs], showlegend=False,
                                 text=[f"w={x:g}" for x in w], **kw), *cells["plane"])

    for k, sw in enumerate(shipped):
        same = (sw.sampler, sw.steps) == (live.sampler, live.steps)
        add(replace(sw, name=sw.name + (" · same sampler and T" if same else " · other settings")),
            dict(color="#555555" if same else "#bbbbbb", dash="solid" if same else "dot"), f"shipped{k}")
    add(live, dict(color="#1f77b4", width=3), "live")
    pw = [p[0] for p in PAPER_IMAGENET64]
    fig.add_trace(go.Scatter(x=pw, y=[p[1] for p in PAPER_IMAGENET64], name="paper ImageNet FID", mode="lines+markers",
                             line=dict(color="#d62728")), *cells["paper"], secondary_y=False)
    fig.add_trace(go.Scatter(x=pw, y=[p[2] for p in PAPER_IMAGENET64], name="paper ImageNet IS", mode="lines+markers",
                             line=dict(color="#ff7f0e", dash="dash")), *cells["paper"], secondary_y=True)
    for key in ("FID", "KID", "IS", "paper"):
        fig.update_xaxes(title_text="w", row=cells[key][0], col=cells[key][1])
    fig.update_xaxes(title_text="IS", row=2, col=2)
    for key, title in (("FID", "FID ↓"), ("KID", "KID ↓"), ("IS", "IS ↑"), ("plane", "FID ↓")):
        fig.update_yaxes(title_text=title, row=cells[key][0], col=cells[key][1])
    fig.update_yaxes(title_text="ImageNet FID", row=1, col=3, secondary_y=False)
    fig.update_yaxes(title_text="ImageNet IS", row=1, col=3, secondary_y=True)
    fig.update_layout(title=f"{card.title} (our classifier's features)", height=760,
                      margin=dict(l=60, r=60, t=80, b=40), legend=dict(orientation="h", y=-0.12))
    return fig


def confidence_figure(names: list[str], p_guide: np.ndarray, p_metric: np.ndarray) -> go.Figure:
    """Mean p(c | x) by the guiding noisy classifier and by the independent metric classifier, per method."""
    fig = go.Figure([go.Bar(x=names, y=p_guide, name="guiding classifier p_φ(c|x)"),
                     go.Bar(x=names, y=p_metric, name="independent classifier p(c|x)")])
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1.02], title="mean confidence in the target class"),
                      height=380, margin=dict(l=50, r=20, t=30, b=120), title="Does the guide's confidence transfer?")
    return fig


HIST_EDGES = np.linspace(-3.0, 3.0, 121)  # bins of 0.05 over the range where x̂ lands


def histogram_figure(ws: list[float], raw: np.ndarray, fixed: np.ndarray | None) -> go.Figure:
    """Histogram of the final x̂ before clipping, one trace per w (and with the remedy, dashed).

    Binned here with numpy (120 bins): the figure stays small however many pixels there are (a figure holding every
    pixel value overflowed Gradio's example cache).
    """
    fig = go.Figure()
    centres = (HIST_EDGES[:-1] + HIST_EDGES[1:]) / 2

    def add(values: np.ndarray, name: str, dash: str) -> None:
        v = np.clip(values.ravel(), HIST_EDGES[0], HIST_EDGES[-1])
        counts, _ = np.histogram(v, HIST_EDGES)
        fig.add_trace(go.Scatter(x=centres, y=counts / max(1, v.size), name=name, mode="lines",
                                 line=dict(shape="hvh", dash=dash)))

    for j, w in enumerate(ws):
        add(raw[j], f"w={w:g}", "solid")
        if fixed is not None:
            add(fixed[j], f"w={w:g} + remedy", "dash")
    fig.add_vline(x=-1, line_dash="dot")
    fig.add_vline(x=1, line_dash="dot")
    fig.update_layout(xaxis_title="pixel value of x̂ (clipping range [−1, 1] dotted; ±3 collects the tails)",
                      yaxis_type="log", yaxis_title="fraction of pixels", height=360, margin=dict(l=50, r=20, t=30, b=40))
    return fig


def saturation_figure(ws: list[float], sat: np.ndarray, sat_fixed: np.ndarray | None) -> go.Figure:
    """Fraction of pixels with |x̂| > 1 before clipping, as a curve over w."""
    fig = go.Figure([go.Scatter(x=ws, y=100 * sat, mode="lines+markers", name="CFG")])
    if sat_fixed is not None:
        fig.add_trace(go.Scatter(x=ws, y=100 * sat_fixed, mode="lines+markers", name="CFG + remedy"))
    fig.update_layout(xaxis_title="w", yaxis_title="% pixels with |x̂| > 1", height=360, margin=dict(l=50, r=20, t=30, b=40))
    return fig


COLOUR_METRICS = [("mean_saturation", "mean HSV saturation"), ("saturated_share", "share of pixels with S > 0.9"),
                  ("colourfulness", "colourfulness (Hasler & Süsstrunk)"), ("clipped_share", "share of clipped channel values")]


def note_figure(text: str, height: int = 380) -> go.Figure:
    """An empty figure that says why it is empty."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(height=height, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def colour_figure(ws: list[float], stats: list[dict], fixed: list[dict] | None, data: dict | None) -> go.Figure:
    """core.metrics.colour_stats of the samples as curves over w (with the remedy, dashed), the real data's level dotted,
    one metric per panel in a 2 × 2 grid."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in COLOUR_METRICS], horizontal_spacing=0.12,
                        vertical_spacing=0.2)
    for k, (key, _) in enumerate(COLOUR_METRICS):
        row, col = 1 + k // 2, 1 + k % 2
        fig.add_trace(go.Scatter(x=ws, y=[st[key] for st in stats], mode="lines+markers", name="CFG",
                                 line=dict(color="#1f77b4"), showlegend=k == 0), row, col)
        if fixed:
            fig.add_trace(go.Scatter(x=ws, y=[st[key] for st in fixed], mode="lines+markers", name="CFG + remedy",
                                     line=dict(color="#2ca02c", dash="dash"), showlegend=k == 0), row, col)
        if data is not None:
            fig.add_trace(go.Scatter(x=[min(ws), max(ws)], y=[data[key]] * 2, mode="lines", name="real held-out data",
                                     line=dict(color="#999999", dash="dot"), showlegend=k == 0), row, col)
        fig.update_xaxes(title_text="w", row=row, col=col)
    fig.update_layout(height=560, margin=dict(l=50, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.15))
    return fig


CACHE_FIELD_LIMIT = 131072  # Python csv's default field limit: Gradio's example cache reads each output as one field


def hue_saturation_figure(pixels: dict[str, np.ndarray], n: int = 600) -> go.Figure:
    """Hue (angle) against HSV saturation (radius) of n sampled pixels per label (e.g. w = 0 and the largest w), one
    polar panel each, every dot in its own pixel's colour.

    n is kept small enough that the figure's JSON stays under CACHE_FIELD_LIMIT (1,500 pixels a trace overflowed it).
    """
    names = list(pixels)
    fig = make_subplots(rows=1, cols=max(1, len(names)), specs=[[{"type": "polar"}] * max(1, len(names))],
                        subplot_titles=[f"pixels at {name}" for name in names], horizontal_spacing=0.16)
    rng = np.random.default_rng(0)
    for k, (name, px) in enumerate(pixels.items()):
        x = px.reshape(-1, 3).astype(np.float64) / 255.0
        x = x[rng.choice(len(x), min(n, len(x)), replace=False)]
        hi, lo = x.max(1), x.min(1)
        sat = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-12), 0.0)
        r, g, b = x.T
        hue = np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) % 360
        colours = [f"rgb({int(255 * a)},{int(255 * b_)},{int(255 * c)})" for a, b_, c in x]
        fig.add_trace(go.Scatterpolar(r=sat, theta=hue, mode="markers", name=name,
                                      marker=dict(size=5, color=colours, line=dict(width=0.3, color="#555555"))), 1, k + 1)
    polar = dict(radialaxis=dict(range=[0, 1], tickvals=[0.5, 1], angle=45, tickangle=45, tickfont=dict(size=9)),
                 angularaxis=dict(tickvals=[0, 90, 180, 270], tickfont=dict(size=10)))
    fig.update_layout({f"polar{'' if k == 0 else k + 1}": polar for k in range(max(1, len(names)))})
    fig.update_layout(height=420, margin=dict(l=50, r=50, t=70, b=30), showlegend=False,
                      title="hue (angle) vs saturation (radius): guidance pushes pixels outwards")
    fig.update_annotations(yshift=24)  # the panels' titles clear the 90° tick
    return fig


def extrapolation_figure(e_u: np.ndarray, e_c: np.ndarray, e_t: np.ndarray, w: float, n_pix: int = 8) -> go.Figure:
    """ε̃ = ε(z) + (1+w)(ε(z,c) − ε(z)): for the pixels where the two ε differ most, a straight line through t = 0, 1,
    1+w; e_t is the guided ε̃ (core.guidance.cfg_combine), which lands on each line at t = 1+w."""
    d = (e_c - e_u).ravel()
    idx = np.argsort(-np.abs(d))[:n_pix]
    t = np.array([min(0.0, 1 + w), 0.0, 1.0, max(1.0, 1 + w)])
    fig = go.Figure()
    for k in idx:
        u, c = e_u.ravel()[k], e_c.ravel()[k]
        fig.add_trace(go.Scatter(x=t, y=u + t * (c - u), mode="lines", line=dict(width=1, color="#bbbbbb"), showlegend=False))
    pts = [(0.0, e_u, "ε(z)  (t = 0)", "#2ca02c"), (1.0, e_c, "ε(z,c)  (t = 1)", "#1f77b4"),
           (1 + w, e_t, f"ε̃  (t = 1+w = {1 + w:g})", "#d62728")]
    for tt, e, name, col in pts:
        fig.add_trace(go.Scatter(x=[tt] * n_pix, y=e.ravel()[idx], mode="markers", name=name, marker=dict(size=9, color=col)))
    fig.update_layout(xaxis_title="t in ε(z) + t·(ε(z,c) − ε(z))", yaxis_title=f"ε at {n_pix} pixels", height=360,
                      margin=dict(l=50, r=20, t=30, b=40), title="ε̃ is a linear extrapolation from ε(z) through ε(z,c)")
    return fig


def _to_u8(a: np.ndarray, mode: str) -> np.ndarray:
    """(C, H, W) → uint8 (H, W) or (H, W, 3): x̂ on [−1, 1], ε maps on ±3, a difference on ± its own maximum."""
    if mode == "x":
        u = ((np.clip(a, -1, 1) + 1) * 127.5).astype(np.uint8)
    else:
        m = max(float(np.abs(a).max()), 1e-6) if mode == "diff" else 3.0
        u = ((np.clip(a / m, -1, 1) + 1) * 127.5).astype(np.uint8)
    return u[0] if u.shape[0] == 1 else u.transpose(1, 2, 0)


def panel_row(panels: list[tuple[str, np.ndarray, str]], scale: int = 5) -> Image.Image:
    """Labelled (C, H, W) panels side by side; ε maps shown on a symmetric scale (grey = 0)."""
    from core.images import grid_image

    imgs = np.stack([_to_u8(a, mode) for _, a, mode in panels])[None]
    return grid_image(imgs, scale, col_labels=[name for name, _, _ in panels], pad=4)


def sprite_html(sheet: Image.Image, ws: list[float], row_h: int) -> str:
    """A sprite-sheet viewer: one row (row_h pixels apart) of the sheet at a time, chosen client-side by the scrub
    slider (no server trip)."""
    pad = 2
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    w0 = ws.index(0.0) if 0.0 in ws else 0
    return (f'<div id="scrub-view" data-ws=\'{json.dumps(ws)}\' data-rowh="{row_h}" '
            f'style="width:{sheet.width}px;height:{row_h + pad}px;background-image:url({uri});'
            f'background-repeat:no-repeat;background-position:0px {-w0 * row_h}px;image-rendering:pixelated"></div>'
            f'<div id="scrub-label">w = {ws[w0]:g}, s = {1 + ws[w0]:g}</div>')


SCRUB_JS = """
(w) => {
  const el = document.getElementById('scrub-view');
  if (!el) return;
  const ws = JSON.parse(el.dataset.ws), rowh = parseFloat(el.dataset.rowh);
  let best = 0;
  for (let j = 1; j < ws.length; j++) if (Math.abs(ws[j] - w) < Math.abs(ws[best] - w)) best = j;
  el.style.backgroundPosition = `0px ${-best * rowh}px`;
  const lab = document.getElementById('scrub-label');
  if (lab) lab.textContent = `w = ${ws[best]}, s = ${1 + ws[best]} (nearest precomputed to ${w})`;
}
"""




def method_tradeoff_figure(stats: dict[str, list[tuple[float, float, float]]], x_title: str,
                           title: str = "class accuracy vs saturation, per method (labels: each method's weight)",
                           x_ref: tuple[float, str] | None = None,
                           y_ref: tuple[float, str] | None = None) -> go.Figure:
    """Per method, class accuracy against saturation, one point per w (CFG++: per scale): up and left is better.

    x_ref, y_ref: (value, name) of the real data's saturation and class accuracy (a fraction), drawn dotted."""
    fig = go.Figure()
    for name, pts in stats.items():
        fig.add_trace(go.Scatter(x=[p[2] for p in pts], y=[100 * p[1] for p in pts], mode="lines+markers+text",
                                 text=[f"{p[0]:g}" for p in pts], textposition="top center", name=name,
                                 line=dict(color=method_colour(name))))
    if x_ref is not None:
        fig.add_vline(x=x_ref[0], line=dict(color="#999999", dash="dot"), annotation_text=x_ref[1],
                      annotation_position="bottom right")
    if y_ref is not None:
        fig.add_hline(y=100 * y_ref[0], line=dict(color="#999999", dash="dot"), annotation_text=y_ref[1],
                      annotation_position="bottom left")
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="class accuracy (%) by our classifier", height=380,
                      margin=dict(l=50, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def method_colour(name: str) -> str:
    """A method's colour (core.guidance.METHOD_TABLE); a variant of APG (other parameters than the paper's) gets its own."""
    return next((m.colour for m in METHOD_TABLE if m.label == name), "#17becf")


def method_weight(name: str) -> str:
    """What a method's weight is called (core.guidance.METHOD_TABLE): "w", or CFG++'s "scale"."""
    return next((m.weight for m in METHOD_TABLE if m.label == name), "w")


def method_plane_figure(live: dict[str, list[dict]], shipped: dict[str, list[dict]], card: ModelCard) -> go.Figure:
    """FID vs IS per method, live (solid) over the shipped sweeps (dotted); the arrow marks CFG's trade-off direction."""
    fig = go.Figure()
    curves = [(style, name, sorted(rows, key=lambda r: float(r["w"])))
              for style, group in (("solid", live), ("dot", shipped)) for name, rows in group.items()]
    labels = iter(spread_labels([(float(r["IS"]), float(r["FID"]), f"{float(r['w']):g}")
                                 for _, _, rows in curves for r in rows]))  # live curves claim their labels first
    for style, name, rows in curves:
        tag = "N=" + f"{int(float(rows[0]['N'])):,}" if rows else ""
        fig.add_trace(go.Scatter(x=[float(r["IS"]) for r in rows], y=[float(r["FID"]) for r in rows],
                                 mode="lines+markers+text", text=[next(labels) for _ in rows],
                                 hovertext=[f"{name} w={float(r['w']):g}" for r in rows], textposition="top center",
                                 name=f"{name} ({'live' if style == 'solid' else 'shipped'}, {tag})",
                                 line=dict(color=method_colour(name), dash=style)))
    cfg = sorted(shipped.get("CFG", []) or live.get("CFG", []), key=lambda r: float(r["w"]))
    if len(cfg) >= 2 and float(cfg[0]["FID"]) > 0 and float(cfg[-1]["FID"]) > 0:  # CFG's direction: smallest → largest w
        a, b = cfg[0], cfg[-1]  # (an annotation on a log axis takes log10 coordinates)
        fig.add_annotation(x=float(b["IS"]), y=math.log10(float(b["FID"])), ax=float(a["IS"]),
                           ay=math.log10(float(a["FID"])), xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=3, arrowcolor="#999999", text="")
        fig.add_annotation(text="grey arrow: CFG's w ↑ trades diversity (FID) for fidelity (IS)", showarrow=False,
                           x=0, y=1.0, xref="paper", yref="paper", xanchor="left", yanchor="bottom", font=dict(size=11))
    fig.update_layout(title=f"{card.title}: FID vs IS per guidance method, lower-right is better",
                      xaxis_title="IS (our classifier) ↑", yaxis_title="FID ↓ (log scale)",
                      yaxis_type="log", height=480,
                      margin=dict(l=70, r=20, t=70, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def _subplot_grid(titles: list[str], rows: int, cols: int, hgap: float, vgap: float) -> tuple[dict, list[str]]:
    """make_subplots' axes as one layout dict, panels row-major with their titles, and each panel's axis suffix ("",
    "2", …); a figure laid out this way builds in a fraction of make_subplots' time (the lab's updates are timed)."""
    width, height = (1 - hgap * (cols - 1)) / cols, (1 - vgap * (rows - 1)) / rows
    layout, suffixes = {"annotations": []}, []
    for i, title in enumerate(titles):
        ax, x0, y1 = "" if i == 0 else str(i + 1), (i % cols) * (width + hgap), 1 - (i // cols) * (height + vgap)
        layout[f"xaxis{ax}"] = dict(domain=[x0, x0 + width], anchor=f"y{ax}")
        layout[f"yaxis{ax}"] = dict(domain=[max(0.0, y1 - height), y1], anchor=f"x{ax}")
        layout["annotations"].append(dict(text=title, x=x0 + width / 2, y=y1, xref="paper", yref="paper",
                                          xanchor="center", yanchor="bottom", showarrow=False,
                                          font=dict(size=16)))  # make_subplots' title size
        suffixes.append(ax)
    return layout, suffixes


def toy_figure(panels: list[tuple[str, list, list]], lim: float) -> go.Figure:
    """The exact lab: one panel per w, with density contours and point sets side by side.

    panels: (title, contours, points); a contour is (name, density on a square grid over [−lim, lim]² (rows = y), colour,
    filled), a point set (name, points (n, 2), colour)."""
    layout, suffixes = _subplot_grid([title for title, _, _ in panels], 1, len(panels), 0.04, 0.0)
    traces, shown = [], set()
    for ax, (_, contours, points) in zip(suffixes, panels):
        layout[f"xaxis{ax}"]["range"] = layout[f"yaxis{ax}"]["range"] = [-lim, lim]
        layout[f"yaxis{ax}"]["scaleanchor"] = f"x{ax}"
        for name, dens, colour, filled in contours:  # float32 on the wire: half the bytes of float64, same picture
            t = np.linspace(-lim, lim, dens.shape[0], dtype=np.float32)
            traces.append(go.Contour(x=t, y=t, z=dens.astype(np.float32), showscale=False, ncontours=10, name=name,
                                     hoverinfo="skip", colorscale="Blues" if filled else [[0, colour], [1, colour]],
                                     contours=dict(coloring="heatmap" if filled else "lines"), xaxis=f"x{ax}",
                                     yaxis=f"y{ax}", line=dict(width=0.5 if filled else 1),
                                     showlegend=name not in shown))
            shown.add(name)
        for name, pts, colour in points:
            xy = pts.astype(np.float32)
            traces.append(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", marker=dict(size=3, color=colour),
                                     name=name, xaxis=f"x{ax}", yaxis=f"y{ax}", showlegend=name not in shown))
            shown.add(name)
    return go.Figure(traces, dict(layout, height=400, margin=dict(l=30, r=20, t=50, b=30),
                                  legend=dict(orientation="h", y=-0.1),
                                  title="the method's samples over the data's density p(x|c) (and p(x)), per w"))


TOY_MEASURES = [("fidelity", "mean log p(c|x) ↑ (fidelity)"), ("coverage", "mode coverage ↑ (diversity)"),
                ("outside", "share outside the 95 % region ↓"), ("to_data", "energy distance to p(x|c) ↓"),
                ("to_tilted", "energy distance to p_w ↓ (dotted: two exact draws)")]


def toy_curves_figure(curves: dict[str, list], title: str) -> go.Figure:
    """The exact lab's measures against each method's weight (core.toy.LabRow per point), one line per method; the
    distance to p_w for the methods whose weight is a w (CFG++'s scale is not), over the exact draws' noise floor."""
    layout, suffixes = _subplot_grid([t for _, t in TOY_MEASURES], 3, 2, 0.12, 0.12)
    traces = []
    for name, rows in curves.items():
        for k, ((key, _), ax) in enumerate(zip(TOY_MEASURES, suffixes)):
            if key != "to_tilted" or method_weight(name) == "w":
                traces.append(go.Scatter(x=[r.w for r in rows], y=[getattr(r, key) for r in rows], name=name,
                                         mode="lines+markers", legendgroup=name, showlegend=k == 0, xaxis=f"x{ax}",
                                         yaxis=f"y{ax}", line=dict(color=method_colour(name))))
    floor = next((rows for name, rows in curves.items() if method_weight(name) == "w"), [])
    ax = suffixes[[key for key, _ in TOY_MEASURES].index("to_tilted")]
    traces.append(go.Scatter(x=[r.w for r in floor], y=[r.floor for r in floor], mode="lines", name="two exact draws",
                             xaxis=f"x{ax}", yaxis=f"y{ax}", line=dict(color="#888888", dash="dot")))
    for (key, _), ax in zip(TOY_MEASURES, suffixes):
        layout[f"xaxis{ax}"]["title"] = dict(text="w" if key == "to_tilted" else "w (CFG++: its scale)")
    return go.Figure(traces, dict(layout, height=820, margin=dict(l=50, r=20, t=60, b=40),
                                  legend=dict(orientation="h", y=-0.08), title=title))


def toy_field_figure(t: np.ndarray, density: np.ndarray, arrows: tuple[np.ndarray, np.ndarray], paths: dict[str, np.ndarray],
                     step: int, title: str) -> go.Figure:
    """One λ of the exact lab: the noisy marginal's contours, the implicit classifier's pull σ∇log p^i(c|z) =
    −(ε*(z, c) − ε*(z)) as arrows (tails on the grid, a dot at each head), and the paths of a few seeds (big dots: where
    they are at this step)."""
    fig = go.Figure(go.Contour(x=t, y=t, z=density, showscale=False, ncontours=12, colorscale="Blues",
                               contours=dict(coloring="lines"), name="p_λ(z|c)", hoverinfo="skip"))
    (x0, x1), seg = arrows, []
    for a, b in zip(x0, x1):
        seg += [(a[0], a[1]), (b[0], b[1]), (None, None)]
    fig.add_trace(go.Scatter(x=[p[0] for p in seg], y=[p[1] for p in seg], mode="lines", name="σ∇log p^i(c|z)",
                             line=dict(color="#555555", width=1)))
    fig.add_trace(go.Scatter(x=x1[:, 0], y=x1[:, 1], mode="markers", marker=dict(size=3, color="#555555"),
                             showlegend=False, hoverinfo="skip"))
    for (name, zs), colour in zip(paths.items(), ("#2ca02c", "#d62728")):
        for k in range(zs.shape[1]):
            fig.add_trace(go.Scatter(x=zs[:, k, 0], y=zs[:, k, 1], mode="lines", line=dict(color=colour, width=1),
                                     name=name, legendgroup=name, showlegend=k == 0, opacity=0.6))
        fig.add_trace(go.Scatter(x=zs[step, :, 0], y=zs[step, :, 1], mode="markers", marker=dict(size=7, color=colour),
                                 legendgroup=name, showlegend=False))
    lim = float(t[-1])
    fig.update_layout(title=title, height=520, margin=dict(l=40, r=20, t=60, b=40),
                      xaxis=dict(range=[-lim, lim], constrain="domain"),
                      yaxis=dict(range=[-lim, lim], scaleanchor="x", constrain="domain"),
                      legend=dict(orientation="h", y=-0.1))
    return fig
