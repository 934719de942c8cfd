"""Static figure of a sweep's curves (``curves.svg``), so that SWEEP.md and RESULTS.md show curves, not only tables.

One row of panels per swept axis with two or more settings (gate size, layer); one panel per metric. Each
panel draws the learned, random and complement gates as mean ± sample sd over seeds, from the same numbers
as the tables (:func:`~ng_core.evaluation.sweep_render.curve_points`). The SVG is byte-stable for the same
sweep (no date, fixed hash salt), so regenerating an unchanged sweep leaves git clean.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from ng_core.evaluation.sweep_numbers import METRICS
from ng_core.evaluation.sweep_render import AXIS_TITLES, curve_points, plot_axes
from ng_core.method.registry import sweep_gates

#: Metrics drawn, in panel order: the headline refusal, the exact leak, and what an edit must keep.
PLOT_METRICS = ("refusal_heldout_images", "leak_rate", "benign_answered", "general_answered")
_STYLE = {"neural_gate": ("#1f77b4", "o", "-"), "random_gate": ("#d62728", "s", "--"),
          "complement_gate": ("#7f7f7f", "^", ":")}  # colour, marker, line of each gate; others: _OTHER_STYLE
_OTHER_STYLE = ("#2ca02c", "D", "-.")


def curves_svg(result: dict, part: str = "evaluation") -> bytes | None:
    """SVG bytes of the curves of ``result`` on ``part`` (None when no axis has two settings)."""
    axes = plot_axes(result)
    if not axes:
        return None
    # A Figure, not pyplot: no GUI backend is chosen or changed for the caller.
    # deferred: matplotlib, only when curves are drawn (reading a sweep needs none)
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.hashsalt": "ng-sweep", "svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(3.2 * len(PLOT_METRICS), 2.9 * len(axes)), layout="constrained")
        grid = fig.subplots(len(axes), len(PLOT_METRICS), squeeze=False)
        for i, axis in enumerate(axes):
            for j, metric in enumerate(PLOT_METRICS):
                ax = grid[i][j]
                pts = curve_points(result, axis, metric, part)
                xs = list(range(len(pts["x"])))
                for gate in sweep_gates():
                    g = gate.name
                    ys = [None if v is None else 100 * v for v in pts[g]]
                    if all(v is None for v in ys):
                        continue
                    err = [0 if s is None else 100 * s for s in pts[g + "_sd"]]
                    keep = [k for k, v in enumerate(ys) if v is not None]
                    colour, marker, line = _STYLE.get(g, _OTHER_STYLE)
                    ax.errorbar([xs[k] for k in keep], [ys[k] for k in keep], yerr=[err[k] for k in keep],
                                color=colour, marker=marker, linestyle=line, capsize=3, markersize=4,
                                label=gate.gate_title)
                ax.set_xticks(xs, [x.split(" (")[0] for x in pts["x"]], rotation=30 if len(xs) > 4 else 0)
                ax.set_ylim(-5, 105)
                ax.grid(alpha=0.3)
                ax.set_title(METRICS[metric][0] + (" ↓" if not METRICS[metric][1] else " ↑"))
                if j == 0:
                    ax.set_ylabel(f"over {AXIS_TITLES[axis]}\n% (mean ± sd over seeds)")
        grid[0][0].legend(loc="best", fontsize=8)
        meta = result.get("meta") or {}
        n = len(meta.get("seeds") or [])
        fig.suptitle(f"{(meta.get('model') or {}).get('id', '?')}: learned vs random vs complement gate, "
                     f"{part} part, {n} seed(s)")
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return buf.getvalue()


def write_curves(result: dict, out: Path, name: str = "curves.svg") -> Path | None:
    """Write :func:`curves_svg` of ``result`` to ``out/name``; remove a stale one when there is nothing to draw."""
    path = Path(out) / name
    svg = curves_svg(result)
    if svg is None:
        path.unlink(missing_ok=True)
        return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # a reader never sees half a figure
    tmp.write_bytes(svg)
    os.replace(tmp, path)
    return path


__all__ = ["PLOT_METRICS", "curves_svg", "write_curves"]
