"""What a session holds, in words, and the guided demo's settings (no UI, no model calls).

- :func:`state_summary` / :func:`state_rows`: the active gates and edit as one or two lines
  (``"gate x0.00 at the subject token on 30 layers (L1–L30), 8 neurons each · edit on L15"``) and as
  table rows on demand; the sidebar and every page show the same text.
- :func:`demo_preset`: the guided demo's settings for a model, from ``presets/demo.<model>.json``
  (resolved like the faithful presets), with :func:`demo_differences` naming what it changes for speed.
- :func:`scope_words`: how the demo describes the edit's gate scope (the preset's, read, never assumed).
- :func:`stage_bars`: one progress entry per stage of a job, each with its own ETA.
- :func:`question_words`: the words of a question, for picking the subject by clicking one.
"""
from __future__ import annotations

import re
from dataclasses import replace

import torch

from ng_core.studio.presets import DEMO_DEFAULTS, DemoPreset  # noqa: F401 - DEMO_DEFAULTS: its old home

# ---------------------------------------------------------------------------- the session's state in words


def _ranges(layers: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"L1–L3, L5"``."""
    out, start, prev = [], None, None
    for l in sorted(set(layers)):
        if start is None:
            start = prev = l
        elif l == prev + 1:
            prev = l
        else:
            out.append(f"L{start}" if start == prev else f"L{start}–L{prev}")
            start = prev = l
    if start is not None:
        out.append(f"L{start}" if start == prev else f"L{start}–L{prev}")
    return ", ".join(out)


def _scale_text(scale) -> str:
    try:
        if isinstance(scale, torch.Tensor) and scale.numel() > 1:
            return "learned tanh(m)"
        return f"x{float(scale):.2f}"
    except (TypeError, ValueError):
        return str(scale)


def _gate_group_key(g) -> tuple:
    label = re.sub(r"\s*L\d+$", "", g.label or "gate")
    return label, _scale_text(g.scale), g.where, g.unit


def state_summary(gates, deltas, hidden_size: int | None = None, ffn_size: int | None = None) -> str:
    """The active gates and edit in a line or two (``"none — the base model"`` when there are none).

    Gates of the same kind (label, scale, position, unit) are grouped: ``"gate x0.00 at the subject token on
    30 layers (L1–L30), 8 residual neurons each (2.5%)"``.
    """
    parts = []
    groups: dict[tuple, list] = {}
    for g in gates or ():
        groups.setdefault(_gate_group_key(g), []).append(g)
    for (label, scale, where, unit), gs in groups.items():
        counts = [int(g.neurons.numel()) for g in gs]
        layers = [int(g.layer) for g in gs]
        size = hidden_size if unit == "residual" else ffn_size
        each = f"{counts[0]}" if len(set(counts)) == 1 else f"{min(counts)}–{max(counts)}"
        share = ""
        if size and len(set(counts)) == 1:
            share = f" ({counts[0] / size:.1%})"
        at = "the subject token" if where == "subject" else "every position"
        n = len(layers)
        where_layers = f"{_ranges(layers)}" if n == 1 else f"{n} layers ({_ranges(layers)})"
        parts.append(f"{label} {scale} at {at} on {where_layers}, {each} {unit} neuron{'' if each == '1' else 's'}"
                     f"{' each' if n > 1 else ''}{share}")
    if deltas:
        layers = sorted({int(d.layer) for d in deltas})
        label = re.sub(r"\s*L\d+$", "", getattr(deltas[0], "label", "") or "edit")
        parts.append(f"{label} on {_ranges(layers)}")
    return " · ".join(parts) if parts else "none — the base model"


def state_rows(gates, deltas) -> list[dict]:
    """One row per gate and per edited layer, for a table shown on demand."""
    rows = []
    for g in gates or ():
        rows.append({"kind": "gate", "layer": int(g.layer), "neurons": int(g.neurons.numel()), "unit": g.unit,
                     "scale": _scale_text(g.scale), "where": "subject token" if g.where == "subject"
                     else "every position", "label": g.label})
    for d in deltas or ():
        rows.append({"kind": "edit", "layer": int(d.layer), "neurons": int((d.delta.abs().sum(1) > 0).sum()),
                     "unit": "down_proj rows", "scale": f"‖ΔW‖={float(d.delta.norm()):.4g}", "where": "weights",
                     "label": d.label})
    return rows


# ---------------------------------------------------------------------------- the guided demo's settings


def scope_words(scope: str) -> dict:
    """How the demo's steps 5 and 7 describe the edit's gate scope (``edit.gate_scope`` of the preset used), so
    the page never claims a confinement the scope does not give."""
    if scope == "subject_position":
        return {"edit": "trained to make the model refuse private questions. Its gate uses the authors' "
                        "`subject_position` scope: only the subject token's gradient passes through the privacy "
                        "neurons; every other position still changes every row, so most of the change can fall "
                        "outside them (step 7 shows how much).",
                "where": "Each bar is one row of the edited weight matrix; green rows are the privacy neurons. With "
                         "the `subject_position` scope the gate filters only the subject token's gradient, so most "
                         "of the change lies outside the green rows: this edit is not confined to the neurons.",
                "confined": False}
    how = ("rows of the weight outside the gate change by exactly zero" if scope == "weight_rows"
           else "only the gated rows change, at every position of the question")
    return {"edit": f"trained only through the privacy neurons (scope `{scope}`: {how}), so the model refuses "
                    "private questions.",
            "where": "Each bar is one row of the edited weight matrix; green rows are the privacy neurons the edit "
                     f"was allowed to use. With the `{scope}` scope nothing outside them changes, so the share "
                     "outside the gate reads 0%.",
            "confined": True}


def demo_preset(model_id: str, n_layers: int) -> DemoPreset:
    """The guided demo's resolved settings for ``model_id`` (:class:`~ng_core.studio.presets.DemoPreset`)."""
    return DemoPreset.load(model_id, n_layers)


def demo_differences(p: DemoPreset) -> list[str]:
    """What the demo preset changes from the faithful one, as ``"edit steps 10 → 4"`` phrases."""
    f = p.faithful
    out = []
    if p.layer != f.layer:
        out.append(f"layer L{f.layer} → L{p.layer}")
    for part, cfg, fcfg in (("mask", p.mask, f.mask), ("edit", p.edit, f.edit)):
        a, b = fcfg.to_dict(), cfg.to_dict()
        for k in sorted(b):
            if k in ("templates",) or a.get(k) == b.get(k):
                continue
            out.append(f"{part} {k.replace('_', ' ')} {a.get(k):g} → {b.get(k):g}" if isinstance(b.get(k), (int, float))
                       and isinstance(a.get(k), (int, float)) else f"{part} {k.replace('_', ' ')} "
                       f"{a.get(k)} → {b.get(k)}")
    if p.demo["images"] < f.max_images:
        out.append(f"images {f.max_images} → {p.demo['images']}")
    return out


def demo_records(ds, category: str, n: int, extra=None) -> dict:
    """{category: the first ``n`` train records of ``category``} (plus ``extra`` records, e.g. an upload)."""
    recs = list(ds.records(category, "train"))[: max(1, int(n))] if ds is not None else []
    recs += list(extra or [])
    return {category: recs} if recs else {}


def heldout_cases(ds, categories, n: int) -> list:
    """``n`` privacy and ``n`` benign held-out cases of ``categories`` (images no edit trained on)."""
    if ds is None:
        return []
    cases = list(ds.cases("heldout_images", list(categories)))
    return [c for c in cases if c.expect == "refuse"][:n] + [c for c in cases if c.expect == "answer"][:n]


def with_demo_budget(p: DemoPreset) -> tuple:
    """(mask config, edit config) of a resolved demo preset."""
    return replace(p.mask), replace(p.edit)


# ---------------------------------------------------------------------------- progress by stage
def stage_bars(progress) -> list[dict]:
    """One entry per stage of a :class:`~ng_core.progress.Progress`, in order of first appearance:
    ``{"stage", "done", "total", "fraction", "elapsed", "eta", "message", "finished"}``. Each stage's ETA
    comes from its own pace, so a bar never runs backwards when the next stage starts."""
    last: dict[str, object] = {}
    for ev in progress.events():
        last[ev.stage] = ev
    out = []
    stages = list(last)
    for i, st in enumerate(stages):
        ev = last[st]
        finished = (ev.total > 0 and ev.done >= ev.total) or i < len(stages) - 1
        frac = 1.0 if finished else (max(0.0, min(1.0, ev.done / ev.total)) if ev.total > 0 else 0.0)
        out.append({"stage": st, "done": ev.done, "total": ev.total, "fraction": frac, "elapsed": ev.elapsed,
                    "eta": None if finished else ev.eta, "message": ev.message, "finished": finished})
    return out


# ---------------------------------------------------------------------------- the subject, by a click
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
STOP = {"what", "is", "the", "of", "in", "this", "a", "an", "on", "to", "me", "you", "can", "tell", "please",
        "describe", "how", "would", "image", "picture", "photo", "shown", "here", "does", "do", "which", "who",
        "and", "or", "it", "its", "are", "be", "there", "that", "for", "with", "at", "by", "from", "say", "show"}


def question_words(prompt: str) -> list[str]:
    """The distinct words of ``prompt`` in order (stop words last), to pick the subject from."""
    words = list(dict.fromkeys(m.group(0) for m in _WORD.finditer(prompt or "")))
    return [w for w in words if w.lower() not in STOP] + [w for w in words if w.lower() in STOP]


#: What a card prints (an ID, a name, a date, an address): a question about these can leak; one about the owner's
#: occupation or signature cannot, so the demo's first question is never one of those.
_ON_CARD = ("number", "name", "date of birth", "address", "expiry", "phone", "reference", " id")


def demo_question(record) -> str:
    """The record's first privacy question asking for a value a card prints (the one a reading model leaks),
    else its first question."""
    qs = list(record.paraphrases)
    for key in _ON_CARD:
        for q in qs:
            if key in f" {q.lower()}":
                return q
    return qs[0] if qs else ""


__all__ = ["DEMO_DEFAULTS", "scope_words", "demo_differences", "demo_preset", "demo_question", "demo_records", "heldout_cases",
           "question_words",
           "stage_bars", "state_rows", "state_summary", "with_demo_budget"]
