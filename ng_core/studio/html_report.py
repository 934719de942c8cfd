"""A shareable report: one self-contained HTML file (no network) telling a session's or a run's story.

The file holds the answers before and after (true private values highlighted), leak / refusal / answer
counts, the localization heatmap and where the edit went (ΔW) as interactive plotly charts — with
plotly.js embedded, so it opens offline — and the config, metrics, model fingerprint and library versions.

- :func:`session_story` collects a dashboard session's story (a :class:`~ng_core.studio.StudioSession`);
- :func:`run_story` collects a saved run bundle's (``ng report-html RUN --out FILE``);
- :func:`render_html` turns a story (plain dict) into the HTML text.

No UI library is imported (plotly only gives its JavaScript, embedded in the file).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from pathlib import Path

import numpy as np
from plotly.offline import get_plotlyjs

from ng_core.evaluation.garbled import garbled
from ng_core.evaluation.leaks import counts_label, find_leaks, leak_spans, split_by_spans
from ng_core.method.bundle import Run, library_versions
from ng_core.studio.neurons import neuron_view
from ng_core.studio.story import state_summary

MARK = "background:#fecaca;color:#7f1d1d;padding:0 2px;border-radius:3px"
CSS = """
body{font-family:Inter,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2937}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #e5e7eb;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #e5e7eb;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f9fafb}.muted{color:#6b7280;font-size:.9em}.tag{border-radius:3px;padding:0 4px;font-size:.85em}
.good{background:#dcfce7}.cost{background:#fef3c7}.neutral{background:#f3f4f6}.leak{background:#fecaca}
.card{max-width:320px;border:1px solid #e5e7eb}.verdict{border-left:4px solid #6b7280;padding:.3em .8em}
pre{background:#f9fafb;padding:.6em;overflow:auto;font-size:.8em}.fig{margin:1em 0}
"""


# ---------------------------------------------------------------------------- answers as HTML
def highlight(text: str, secrets=()) -> str:
    """``text`` escaped, the substrings that spell a true private value in ``<mark>``."""
    if not text:
        return "<i>(empty)</i>"
    return "".join(f"<mark style='{MARK}'>{html.escape(p)}</mark>" if leak else html.escape(p)
                   for p, leak in split_by_spans(text, leak_spans(text, secrets)))


def answer_entry(label: str, answer, secrets=(), expect: str | None = None, right: bool | None = None) -> dict:
    """A story's answer: ``{label, text, refused, garbled, leaks, expect, right}`` from an ``Answer`` (or any
    ``.text``); ``expect`` ("refuse" / "answer") colours its verdict, ``right`` judges a harmless answer."""
    text = getattr(answer, "text", str(answer or ""))
    refused = getattr(answer, "refused", None)
    return {"label": label, "text": text, "refused": refused, "garbled": garbled(text),
            "leaks": find_leaks(text, secrets), "secrets": list(secrets or ()), "expect": expect, "right": right}


def _verdict_tags(a: dict) -> str:
    """Tags coloured by what the question wanted: a leak red, a refused private question green, a refused
    harmless one amber, a harmless answer green; neutral when nothing was expected."""
    tags, expect = [], a.get("expect")
    if a.get("leaks"):
        tags.append("<span class='tag leak'>leaked " + html.escape(", ".join(a["leaks"])) + "</span>")
    if a.get("refused") is True:
        cls = "good" if expect == "refuse" else "cost" if expect == "answer" else "neutral"
        tags.append(f"<span class='tag {cls}'>refused</span>")
    elif a.get("garbled"):
        tags.append(f"<span class='tag cost'>garbled ({html.escape(a['garbled'])})</span>")
    elif a.get("refused") is False:
        tags.append(f"<span class='tag {'good' if expect == 'answer' else 'neutral'}'>answered</span>")
    if a.get("right") is not None:
        tags.append(f"<span class='tag {'good' if a['right'] else 'cost'}'>{'right' if a['right'] else 'wrong'}"
                    "</span>")
    return " ".join(tags)


# ---------------------------------------------------------------------------- figures
def _fig(title: str, data: list, layout: dict, caption: str = "") -> dict:
    base = {"title": {"text": title, "x": 0, "font": {"size": 14}}, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "height": 340, "font": {"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 12}}
    out = {**base, **layout}
    for ax in ("xaxis", "yaxis"):  # tick labels push the axis title aside instead of running into it
        if ax in out:
            out[ax] = {"automargin": True, **out[ax]}
    return {"title": title, "caption": caption, "data": data, "layout": out}


def _pool(a: np.ndarray, max_cols: int = 512) -> tuple[np.ndarray, int]:
    """Max-|value| pooling of columns so a heatmap stays small."""
    n = a.shape[1]
    w = max(1, math.ceil(n / max_cols))
    if w == 1:
        return a, 1
    pad = (-n) % w
    b = np.pad(a, ((0, 0), (0, pad)), constant_values=np.nan).reshape(a.shape[0], -1, w)
    idx = np.nanargmax(np.abs(np.nan_to_num(b, nan=0.0)), axis=2)
    return np.take_along_axis(b, idx[..., None], axis=2)[..., 0], w


def score_figure(view) -> dict:
    """The localization heatmap: layers x neurons scores of a :class:`~ng_core.studio.NeuronView`."""
    z, w = _pool(np.asarray(view.score, dtype=float))
    counts = view.counts()
    y = [f"L{l} · {counts[l]}" for l in view.layers]
    x = [i * w for i in range(z.shape[1])]
    lo, hi = float(np.nanmin(z)), float(np.nanmax(z))
    div = lo < 0 < hi
    trace = {"type": "heatmap", "z": np.round(z, 4).tolist(), "x": x, "y": y,
             "colorscale": "RdBu" if div else "Viridis", "reversescale": div, "zmid": 0 if div else None,
             "hovertemplate": "%{y}<br>neuron %{x}<br>score %{z:.4f}<extra></extra>"}
    if not div:
        trace.pop("zmid")
    return _fig(f"Where the privacy neurons are: {view.score_label}", [trace],
                {"height": max(240, 80 + 26 * len(y)), "yaxis": {"type": "category", "autorange": "reversed",
                 "title": {"text": "layer · selected neurons"}},
                 "xaxis": {"title": {"text": "neuron" + (f" (cells of {w})" if w > 1 else "")}}},
                f"Selection rule: {view.rule}. {int(view.selected.sum())} neurons selected.")


def delta_figures(deltas: dict, gates: dict | None = None, name: str = "") -> list[dict]:
    """Where an edit went: ‖ΔW row‖ per residual dim (inside / outside the gate) and |ΔW| pooled, per layer.

    ``deltas`` = {layer: ΔW [hidden, ffn]}; ``gates`` = {layer: bool rows} (may be missing)."""
    out = []
    for layer, d in sorted(deltas.items()):
        d = np.abs(np.asarray(d, dtype=float))
        rn = np.sqrt((d ** 2).sum(1))
        g = None if gates is None else gates.get(layer)
        colors = None if g is None else np.where(np.asarray(g, dtype=bool), "#54A24B", "#E45756").tolist()
        share = ""
        if g is not None and np.asarray(g).any():
            g = np.asarray(g, dtype=bool)
            out_share = float(np.sqrt((rn[~g] ** 2).sum()) / max(np.sqrt((rn ** 2).sum()), 1e-30))
            share = f"{int(g.sum())} gated rows of {len(g)}; {out_share:.1%} of ‖ΔW‖ lies outside them."
        bar = {"type": "bar", "x": list(range(len(rn))), "y": np.round(rn, 6).tolist(), "name": f"L{layer}",
               "hovertemplate": "row %{x}<br>‖ΔW row‖ %{y:.3g}<extra></extra>"}
        if colors is not None:
            bar["marker"] = {"color": colors}
        label = f" ({name})" if name else ""
        out.append(_fig(f"Where the edit went{label}: ‖ΔW‖ per row of L{layer} down_proj (green = inside the gate)",
                        [bar], {"height": 280, "bargap": 0, "xaxis": {"title": {"text": "row = residual dim"}},
                                "yaxis": {"title": {"text": "‖ΔW row‖"}}}, share))
        rows = max(1, math.ceil(d.shape[0] / 160))
        pr = (-d.shape[0]) % rows
        z = np.pad(d, ((0, pr), (0, 0))).reshape(-1, rows, d.shape[1]).max(1)
        z, w = _pool(z, 256)
        out.append(_fig(f"|ΔW| of L{layer} down_proj{label}", [{
            "type": "heatmap", "z": np.round(z, 8).tolist(), "x": [i * w for i in range(z.shape[1])],
            "y": [i * rows for i in range(z.shape[0])], "colorscale": "Magma", "reversescale": True,
            "hovertemplate": "row %{y}<br>column %{x}<br>|ΔW| %{z:.3g}<extra></extra>"}],
            {"height": 360, "xaxis": {"title": {"text": "column = FFN neuron"}},
             "yaxis": {"title": {"text": "row = residual dim"}, "autorange": "reversed"}}))
    return out


def _gate_rows(run) -> dict:
    out = {}
    for k, v in (run.tensors.get("deltas", {}) if run is not None else {}).items():
        if k.endswith("/gate"):
            lay = int(k.split("/")[1][1:])
            out[lay] = out.get(lay, np.zeros(v.shape[0], dtype=bool)) | v.bool().numpy()
    return out


def _run_deltas(run) -> dict:
    return {d.layer: d.delta.numpy() for d in run.deltas()} if run is not None else {}


def _scalars(d: dict, prefix: str = "") -> dict:
    """Flat {key: number or short string} of a metrics dict (lists of records are left out)."""
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_scalars(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[key] = v
    return out


# ---------------------------------------------------------------------------- stories
def run_story(run) -> dict:
    """The story of a saved run bundle (no model needed): config, metrics, heatmaps, ΔW maps, and the
    answers the dashboard stored with it (``metrics["answers"]``), if any."""
    if not isinstance(run, Run):
        run = Run.load(run)
    story = {"title": f"Neural Gate Studio — {run.kind} run {run.path.name if run.path else ''}".strip(),
             "model": dict(run.model), "versions": dict(run.versions), "config": run.config,
             "metrics": _scalars({k: v for k, v in run.metrics.items() if k != "answers"}),
             "created": run.created, "summary": "", "answers": [], "counts": {}, "figures": [], "notes": []}
    stored = run.metrics.get("answers") or {}
    story["answers"] = list(stored.get("sections", []))
    story["counts"] = dict(stored.get("counts", {}))
    if run.tensors.get("masks") or run.tensors.get("scores"):
        try:
            story["figures"].append(score_figure(neuron_view(run)))
        except Exception as e:  # noqa: BLE001 - a report still says what it could not draw
            story["notes"].append(f"no heatmap: {e}")
    if run.kind == "edit":
        story["figures"] += delta_figures(_run_deltas(run), _gate_rows(run))
        layers = sorted(_run_deltas(run))
        story["summary"] = f"{run.config.get('edit', {}).get('method', 'edit')} edit on " + \
            ", ".join(f"L{l}" for l in layers)
    if not story["answers"]:
        story["notes"].append("This run holds no answers; run the guided demo or the held-out batch in the dashboard "
                              "and export from there for before/after answers.")
    return story


def image_data_uri(image, size: int = 320) -> str:
    """A small PNG of ``image`` (a PIL image) as a ``data:`` URI, so the report shows the card offline."""
    img = image.copy()
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def session_story(s, *, sections: list[dict] | None = None, counts: dict | None = None, control: bool = True,
                  verdict: str = "", with_image: bool = True) -> dict:
    """The story of a dashboard session: what it holds now (model, gates, edit, localization) plus the
    answer ``sections`` the page collected (``[{"title", "question", "rows": [answer_entry...]}]``), their
    leak / refusal / answer ``counts`` ({side: outcome_counts}), the control's ``verdict`` in words and the
    current card's image (``with_image``). Nothing is generated here."""
    a = s.adapter
    info = s.model_info()
    story = {"title": "Neural Gate Studio — session report",
             "model": {k: info[k] for k in ("model", "fingerprint", "layers", "hidden_size", "ffn_size", "parameters",
                                            "source")},
             "versions": library_versions(),
             "config": {}, "metrics": {}, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             "summary": state_summary(s.gates, s.deltas, a.hidden_size, a.ffn_size),
             "answers": list(sections or []), "counts": dict(counts or {}), "figures": [], "notes": [],
             "verdict": verdict, "image": None}
    if with_image and getattr(s, "image", None) is not None:
        story["image"] = {"src": image_data_uri(s.image), "caption": s.image_name or "the card"}
    if s.localization is not None:
        try:
            story["figures"].append(score_figure(neuron_view(s.localization)))
        except Exception as e:  # noqa: BLE001
            story["notes"].append(f"no heatmap: {e}")
    run = s.edit_run
    if run is not None:
        story["config"] = run.config
        story["metrics"] = _scalars({k: v for k, v in run.metrics.items() if k != "answers"})
    pair = getattr(s, "edit_pair", None)
    if pair is not None and control:
        story["figures"] += delta_figures(_run_deltas(pair.learned), _gate_rows(pair.learned), "learned gate")
        story["figures"] += delta_figures(_run_deltas(pair.control), _gate_rows(pair.control), "random-gate control")
    elif s.deltas:
        story["figures"] += delta_figures({d.layer: d.delta.numpy() for d in s.deltas}, _gate_rows(run))
    return story


# ---------------------------------------------------------------------------- rendering
def _plotly_js() -> str:
    return get_plotlyjs()


def _script_json(obj) -> str:
    """JSON safe inside a ``<script>`` element."""
    return json.dumps(obj, default=_json_default).replace("</", "<\\/").replace("<!--", "<\\!--")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _table(d: dict) -> str:
    if not d:
        return "<p class='muted'>(none)</p>"
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def render_html(story: dict, plotly_js: str | None = None) -> str:
    """The story as one HTML document: styles, plotly.js and the figures' data inline; nothing is fetched."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(story['title'])}"
             f"</title><style>{CSS}</style><script>{plotly_js if plotly_js is not None else _plotly_js()}</script>"
             "</head><body>", f"<h1>{html.escape(story['title'])}</h1>"]
    m = story.get("model", {})
    parts.append(f"<p class='muted'>Model <code>{html.escape(str(m.get('model') or m.get('id', '?')))}</code> · "
                 f"fingerprint <code>{html.escape(str(m.get('fingerprint', '?')))}</code> · "
                 f"created {html.escape(str(story.get('created', '')))}</p>")
    if story.get("summary"):
        parts.append(f"<p><b>Active interventions:</b> {html.escape(story['summary'])}</p>")
    if story.get("image"):
        im = story["image"]
        parts.append(f"<figure><img class='card' src='{html.escape(im['src'])}' alt='the card'><figcaption "
                     f"class='muted'>{html.escape(im.get('caption', ''))}</figcaption></figure>")
    if story.get("verdict"):
        parts.append(f"<p class='verdict'><b>What the control shows:</b> {html.escape(story['verdict'])}</p>")
    if story.get("counts"):
        parts.append("<h2>Leaks, refusals and answers</h2><table><tr><th>model state</th><th>counts</th></tr>")
        parts += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(counts_label(c))}</td></tr>"
                  for k, c in story["counts"].items()]
        parts.append("</table><p class='muted'>A leak is a true private value drawn on the image, found in the "
                     "answer; garbled answers (repetition, no letters, mostly non-words) never count as answered.</p>")
    for sec in story.get("answers", []):
        parts.append(f"<h2>{html.escape(sec.get('title', 'Answers'))}</h2>")
        if sec.get("question"):
            parts.append(f"<p><b>Question:</b> {html.escape(sec['question'])}</p>")
        if sec.get("text"):
            parts.append(f"<p class='muted'>{html.escape(sec['text'])}</p>")
        rows = sec.get("rows", [])
        if rows and isinstance(rows[0], list):  # a batch: one row per case, one cell per model state
            heads = [a["label"] for a in rows[0]]
            parts.append("<table><tr><th>question</th>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
                         + "</tr>")
            for qs, cells in zip(sec.get("questions", [""] * len(rows)), rows):
                parts.append(f"<tr><td>{html.escape(qs)}</td>" + "".join(
                    f"<td>{highlight(a['text'], a.get('secrets'))}<br>{_verdict_tags(a)}</td>" for a in cells)
                    + "</tr>")
            parts.append("</table>")
        else:
            parts.append("<table>" + "".join(
                f"<tr><th>{html.escape(a['label'])}</th><td>{highlight(a['text'], a.get('secrets'))}<br>"
                f"{_verdict_tags(a)}</td></tr>" for a in rows) + "</table>")
    figs = story.get("figures", [])
    if figs:
        parts.append("<h2>Charts</h2>")
    for i, f in enumerate(figs):
        parts.append(f"<div class='fig' id='fig{i}'></div>")
        if f.get("caption"):
            parts.append(f"<p class='muted'>{html.escape(f['caption'])}</p>")
        parts.append(f"<script>Plotly.newPlot('fig{i}', {_script_json(f['data'])}, {_script_json(f['layout'])}, "
                     "{displaylogo: false, responsive: true});</script>")
    for n in story.get("notes", []):
        parts.append(f"<p class='muted'>Note: {html.escape(n)}</p>")
    parts.append("<h2>Config</h2><pre>" + html.escape(json.dumps(story.get("config", {}), indent=2,
                                                                default=_json_default)) + "</pre>")
    parts.append("<h2>Metrics</h2>" + _table(story.get("metrics", {})))
    parts.append("<h2>Model and versions</h2>" + _table(story.get("model", {})) + _table(story.get("versions", {})))
    parts.append("<p class='muted'>Made by Neural Gate Studio. This file is self-contained: it loads nothing from "
                 "the network.</p></body></html>")
    return "".join(parts)


def write_html(story: dict, path) -> Path:
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(story), encoding="utf-8")
    return path


__all__ = ["answer_entry", "delta_figures", "highlight", "image_data_uri", "render_html", "run_story", "score_figure",
           "session_story", "write_html"]
