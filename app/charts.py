"""Plotly figures for the dashboard (UI only: they draw arrays the core computed)."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ng_core.studio import find_method, sweep_gates

FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=12)
DIVERGING = "RdBu_r"
SEQUENTIAL = "Viridis"
VARIANT_COLORS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]


def _layout(fig: go.Figure, title: str = "", height: int = 320, **kw) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=14)) if title else None, height=height,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), font=FONT,
                      paper_bgcolor="rgba(0,0,0,0)", **kw)
    return fig


def default_bin(n: int, max_cells: int = 1536) -> int:
    return max(1, math.ceil(n / max_cells))


def bin_columns(a: np.ndarray, width: int, how: str = "max") -> np.ndarray:
    """Group columns ``width`` at a time (max of |value| keeps the sign of the extreme)."""
    if width <= 1:
        return a
    L, N = a.shape
    pad = (-N) % width
    if pad:
        fill = np.nan
        a = np.concatenate([a, np.full((L, pad), fill, dtype=float)], axis=1)
    b = a.reshape(L, -1, width)
    if how == "mean":
        return np.nanmean(b, axis=2)
    idx = np.nanargmax(np.abs(np.nan_to_num(b, nan=0.0)), axis=2)
    return np.take_along_axis(b, idx[..., None], axis=2)[..., 0]


def neuron_heatmap(view, bin_width: int | None = None, selected_only: bool = False, title: str | None = None) -> go.Figure:
    """Layers x neurons heatmap of a NeuronView; hover gives layer, neuron, score, frequency, selection.

    One heatmap trace without cell gaps: plotly draws it as a single image (gaps or per-neuron
    markers make it draw every cell separately, which is slow for all layers). ``selected_only``
    greys out the neurons outside the selection; ``title`` replaces the technical one (the guided demo's plain
    words).
    """
    score = np.asarray(view.score, dtype=float)
    L, N = score.shape
    w = bin_width or default_bin(N)
    z = bin_columns(score, w)
    freq = view.freq if view.freq is not None else np.full_like(score, np.nan)
    fz = bin_columns(np.asarray(freq, dtype=float), w)
    sel = bin_columns(np.asarray(view.selected, dtype=float), w)
    starts = np.arange(z.shape[1]) * w
    counts = view.counts()
    ylabels = [f"L{l} · {counts[l]}" for l in view.layers]  # the layer and its number of selected neurons
    if w == 1:
        ntext, hover_n = None, "neuron %{x}"
    else:
        ntext = np.tile([f"{s}–{min(s + w, N) - 1}" for s in starts], (L, 1))
        hover_n = "neurons %{text}"
    custom = np.stack([np.nan_to_num(fz, nan=-1.0), sel], axis=-1)
    lo, hi = float(np.nanmin(z)), float(np.nanmax(z))
    diverging = lo < 0 < hi
    shown = np.where(sel > 0, z, np.nan) if selected_only else z
    freq_part = "<br>frequency %{customdata[0]:.2f}" if view.freq is not None else ""
    fig = go.Figure(go.Heatmap(
        z=np.round(shown, 4), x=starts, y=ylabels, customdata=np.round(custom, 3), text=ntext,
        colorscale=DIVERGING if diverging else SEQUENTIAL, zmid=0 if diverging else None,
        zmin=None if diverging else lo, zmax=None if diverging else hi,
        colorbar=dict(title=dict(text="score", side="right"), thickness=12),
        hovertemplate=f"layer · selected: %{{y}}<br>{hover_n}<br>score %{{z:.4f}}{freq_part}"
                      "<br>selected %{customdata[1]:.0f}<extra></extra>",
        hoverongaps=False,
    ))
    xt = "neuron index" + (f" (cells of {w})" if w > 1 else "")
    unit = "residual dims (down_proj rows)" if view.unit == "residual" else "FFN neurons (down_proj inputs)"
    _layout(fig, title or (f"{view.score_label} — {unit}" + (" — selected neurons only" if selected_only else "")),
            height=max(240, 70 + 24 * L), plot_bgcolor="#eeeeee",
            xaxis=dict(title=xt, showgrid=False, zeroline=False),
            yaxis=dict(title="layer · selected neurons", autorange="reversed", type="category"))
    return fig


LOSS_WORDS = ("loss", "nll", "kl", "l1")


def loss_chart(history: list[dict], title: str = "Loss per step", max_lines: int = 6) -> go.Figure:
    """Lines of the loss terms in ``history`` (``Job.metric_history(stage)`` or an edit's losses): only keys
    that name a loss (loss, nll, kl, l1), at most ``max_lines``, the legend under the plot so it never covers
    the title."""
    fig = go.Figure()
    if history:
        keys = [k for k in history[-1] if k not in ("step", "stage", "done", "total", "edit")
                and isinstance(history[-1][k], (int, float)) and any(w in k.lower() for w in LOSS_WORDS)]
        edits: dict = {}  # records of several edits (each with its own steps) are never joined into one line
        for h in history:
            edits.setdefault((h.get("category"), h.get("edit")), []).append(h)
        if len(edits) > 1 and keys:
            k = "loss" if "loss" in keys else keys[0]
            cats = {c for c, _ in edits}
            for i, ((cat, e), hs) in enumerate(edits.items()):
                name = f"edit {e + 1 if isinstance(e, int) else e}" + (f" ({cat})" if len(cats) > 1 and cat else "")
                fig.add_trace(go.Scatter(x=[h["step"] for h in hs], y=[h.get(k) for h in hs], mode="lines",
                                         name=name, line=dict(color=VARIANT_COLORS[i % len(VARIANT_COLORS)], width=2)))
            title = f"{title} — {k}, one line per edit"
        for i, k in enumerate(keys[:max_lines] if len(edits) <= 1 else []):
            ys = [h.get(k) for h in history]
            fig.add_trace(go.Scatter(x=[h["step"] for h in history], y=ys, mode="lines", name=k,
                                     line=dict(color=VARIANT_COLORS[i % len(VARIANT_COLORS)], width=2)))
    fig = _layout(fig, title, height=300, xaxis=dict(title="step"), yaxis=dict(title="token-mean NLL (nats)"),
                  legend=dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0), showlegend=True)
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=70))
    return fig


def neuron_detail(sensitive: np.ndarray, benign: np.ndarray, layer: int, neuron: int,
                  labels_s=None, labels_b=None) -> go.Figure:
    fig = go.Figure()
    for name, vals, color, labels in (("privacy prompts", sensitive, "#E45756", labels_s),
                                      ("benign prompts", benign, "#4C78A8", labels_b)):
        fig.add_trace(go.Box(y=np.asarray(vals, dtype=float), name=name, boxpoints="all", jitter=0.4,
                             pointpos=0, marker=dict(color=color, size=7), line=dict(color=color),
                             text=labels, hovertemplate="%{text}<br>activation %{y:.4f}<extra></extra>"))
    return _layout(fig, f"Activation of neuron {neuron} at layer {layer} (subject token)", height=300,
                   yaxis=dict(title="activation"), showlegend=False)


def delta_heatmap(delta: np.ndarray, gate_rows: np.ndarray | None = None, max_rows: int = 192,
                  max_cols: int = 256) -> go.Figure:
    """|ΔW| of one down_proj (rows = residual dims, columns = FFN neurons), max-pooled to fit."""
    a = np.abs(np.asarray(delta, dtype=float))
    d, f = a.shape
    rw, cw = max(1, math.ceil(d / max_rows)), max(1, math.ceil(f / max_cols))
    pr, pc = (-d) % rw, (-f) % cw
    a2 = np.pad(a, ((0, pr), (0, pc)))
    z = a2.reshape(a2.shape[0] // rw, rw, a2.shape[1] // cw, cw).max(axis=(1, 3))
    ys = np.arange(z.shape[0]) * rw
    xs = np.arange(z.shape[1]) * cw
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=ys, colorscale="Magma", reversescale=True,
                               colorbar=dict(title=dict(text="|ΔW|", side="right"), thickness=12),
                               hovertemplate="row (residual dim) %{y}<br>column (FFN neuron) %{x}"
                                             "<br>|ΔW| %{z:.3g}<extra></extra>"))
    if gate_rows is not None and gate_rows.any() and not gate_rows.all():
        rows = np.flatnonzero(gate_rows)
        fig.add_trace(go.Scatter(x=[-max(1, f // 60)] * len(rows), y=rows, mode="markers", name="gated rows",
                                 marker=dict(symbol="line-ew-open", size=8, color="#54A24B", line=dict(width=2)),
                                 hovertemplate="gated row %{y}<extra></extra>"))
    bins = "" if rw == cw == 1 else f" (max over {rw}×{cw} cells)"
    return _layout(fig, f"|ΔW| of down_proj{bins}", height=360,
                   xaxis=dict(title="column = FFN neuron"), yaxis=dict(title="row = residual dim", autorange="reversed"),
                   legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))


def row_norms(norms: dict, gates: dict | None = None) -> go.Figure:
    """‖ΔW row‖ per residual dim for each edited layer; gated rows in green."""
    fig = go.Figure()
    for i, (layer, v) in enumerate(sorted(norms.items())):
        v = np.asarray(v, dtype=float)
        colors = None
        g = (gates or {}).get(layer)
        if g is not None:
            colors = np.where(np.asarray(g, dtype=bool), "#54A24B", "#E45756")
        fig.add_trace(go.Bar(x=np.arange(len(v)), y=v, name=f"L{layer}",
                             marker=dict(color=colors if colors is not None else VARIANT_COLORS[i % 8]),
                             hovertemplate="row %{x}<br>‖ΔW row‖ %{y:.3g}<extra>L" + str(layer) + "</extra>"))
    return _layout(fig, "Where the edit went: ‖ΔW‖ per row of down_proj (green = inside the gate)", height=260,
                   xaxis=dict(title="row = residual dim"), yaxis=dict(title="‖ΔW row‖"), bargap=0)


def rates_chart(table, title: str) -> go.Figure:
    """Grouped bars: ``table`` has columns category, split, variant, rate, n."""
    fig = go.Figure()
    variants = list(dict.fromkeys(table["variant"]))
    for i, v in enumerate(variants):
        t = table[table["variant"] == v]
        fig.add_trace(go.Bar(
            x=[t["split"].tolist(), t["category"].tolist()], y=t["rate"], name=v,
            marker_color=VARIANT_COLORS[i % len(VARIANT_COLORS)],
            customdata=t["n"], text=[f"{r:.0%}" for r in t["rate"]], textposition="outside",
            hovertemplate="%{x}<br>%{y:.0%} of %{customdata} cases<extra>" + v + "</extra>"))
    return _layout(fig, title, height=340, barmode="group", yaxis=dict(title="rate", range=[0, 1.12],
                                                                      tickformat=".0%"),
                   legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))


def tradeoff_chart(result: dict) -> go.Figure:
    """Privacy refusal rate (y) against benign answer rate (x): one line per method, points labelled by value."""
    fig = go.Figure()
    param = result.get("param", "value")
    methods = list(dict.fromkeys(p["method"] for p in result.get("points", [])))
    for i, m in enumerate(methods):
        pts = [p for p in result["points"] if p["method"] == m]
        color = VARIANT_COLORS[i % len(VARIANT_COLORS)]
        name, rec = curve_name(m), find_method(m)
        fig.add_trace(go.Scatter(
            x=[p["benign_answer_rate"] for p in pts], y=[p["refusal_rate"] for p in pts], name=name,
            mode="lines+markers+text", text=[f"{param}={p['value']:g}" for p in pts], textposition="top center",
            marker=dict(size=10, color=color),
            line=dict(color=color, width=2, dash="dot" if rec is not None and rec.control else None),
            customdata=[[p["n_refuse"], p["n_answer"], p.get("gate_leak")] for p in pts],
            hovertemplate=("%{text}<br>refusals %{y:.0%} of %{customdata[0]} privacy questions<br>"
                           "answers %{x:.0%} of %{customdata[1]} benign questions<br>gate leak %{customdata[2]:.3f}"
                           f"<extra>{name}</extra>")))
    b = result.get("baseline")
    if b and b.get("refusal_rate") is not None and b.get("benign_answer_rate") is not None:
        fig.add_trace(go.Scatter(x=[b["benign_answer_rate"]], y=[b["refusal_rate"]], name="unedited",
                                 mode="markers+text", text=["unedited"], textposition="bottom center",
                                 marker=dict(symbol="star", size=14, color="#555")))
    return _layout(fig, f"Trade-off over {param}: privacy refusals vs benign answers", height=380,
                   xaxis=dict(title="benign answer rate", range=[-0.05, 1.08], tickformat=".0%"),
                   yaxis=dict(title="privacy refusal rate", range=[-0.05, 1.12], tickformat=".0%"),
                   legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))


def curve_name(method: str) -> str:
    """A method's line in the trade-off chart: its gate and what it is ("learned gate (Neural Gate)",
    "random gate (control)"), its title for an edit without a sweep gate, the name itself for an unknown one."""
    m = find_method(method)
    if m is None:
        return method
    return f"{m.gate_title} gate ({'control' if m.control else m.title})" if m.gate_title else m.title


def sweep_curve(points: dict, axis_title: str, metric_title: str, part: str = "evaluation") -> go.Figure:
    """Learned vs random (vs complement) gate along one sweep axis: mean over seeds with ± sd error bars.

    ``points`` is :func:`ng_core.evaluation.sweep_render.curve_points`'s dict (``x`` labels, per gate means and sds).
    """
    fig = go.Figure()
    for i, gate in enumerate(sweep_gates()):
        g, name, color = gate.name, f"{gate.gate_title} gate", VARIANT_COLORS[i % len(VARIANT_COLORS)]
        if g not in points:
            continue
        fig.add_trace(go.Scatter(
            x=points["x"], y=points[g], name=name, mode="lines+markers",
            error_y={"type": "data", "array": [v or 0 for v in points[g + "_sd"]], "visible": True},
            marker={"size": 9, "color": color},
            line={"color": color, "width": 2, "dash": "dot" if gate.control else None},
            hovertemplate=f"%{{x}}: %{{y:.0%}}<extra>{name}</extra>"))
    return _layout(fig, f"{metric_title} over {axis_title} ({part} part, mean ± sd over seeds)", height=340,
                   xaxis={"title": axis_title, "type": "category"},
                   yaxis={"title": metric_title, "range": [-0.05, 1.05], "tickformat": ".0%"},
                   legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1})
