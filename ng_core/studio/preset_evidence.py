"""A preset's measured numbers in plain sentences, for the pages and the CLI (no UI, no model calls).

Why: a preset is chosen on the world set's validation part and measured on its test part (``ng preset-search``);
the user who runs it should read those numbers where they use it, including the targets it misses and what the
random-gate control did, not a description of what the preset hopes to do. The numbers live in the preset file's
``measured`` object, written from the search's ``search.json``.
"""
from __future__ import annotations

#: measure -> words, in the order they are told.
WORDS = {
    "leaks_removed": "of the unedited model's leaks removed",
    "refusal_edited": "of private questions refused on the edited categories",
    "refusal_never_edited": "refused on categories never edited",
    "harmless_right": "of harmless questions answered right",
    "general_answered": "of general questions answered",
}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _mean(v):
    return v.get("mean") if isinstance(v, dict) else v


def measured_lines(measured: dict | None) -> list[str]:
    """Sentences for a preset's ``measured`` object (an empty list when it has none)."""
    if not measured or not isinstance(measured.get("numbers"), dict):
        return []
    n = measured["numbers"]
    seeds = measured.get("seeds") or []
    parts = []
    for k, words in WORDS.items():
        if k not in n:
            continue
        v = _mean(n[k])
        text = f"{_pct(v)} {words}"
        if k == "harmless_right" and (measured.get("unedited") or {}).get("harmless_right") is not None:
            text += f" (unedited {_pct(measured['unedited']['harmless_right'])})"
        parts.append(text)
    where = ("on held-out-style cards (many photographed) asked in wordings no setting was chosen on"
             f" ({measured.get('part', 'test')} part")
    where += f", {len(seeds)} seed{'s' if len(seeds) != 1 else ''})" if seeds else ")"
    lines = [f"Measured {where}: " + "; ".join(parts) + "."]
    if measured.get("edit_seconds") is not None:
        lines[0] += f" The edit took {measured['edit_seconds']:.0f} s on a 2-core CPU"
        lines[0] += f" ({measured['edit_seconds_note']})." if measured.get("edit_seconds_note") else "."
    missed = [(k, t) for k, t in (measured.get("targets") or {}).items() if t.get("met") is False]
    if missed:
        told = []
        for k, t in missed:
            if k == "harmless_right":
                told.append(f"harmless answers right within 5 points of unedited ({100 * (t.get('value') or 0):+.0f} points)")
            else:
                told.append(f"{_pct(t.get('bar'))} {WORDS.get(k, k).replace('of ', '', 1)} ({_pct(t.get('value'))})")
        lines.append("Targets this preset misses: " + "; ".join(told) + ".")
    c = measured.get("control")
    if isinstance(c, dict) and c:
        lr, lc = _mean(n.get("leaks_removed")), _mean(c.get("leaks_removed"))
        rr, rc = _mean(n.get("refusal_edited")), _mean(c.get("refusal_edited"))
        if None not in (lr, lc, rr, rc):
            same = abs(lr - lc) <= 0.05 and abs(rr - rc) <= 0.05
            better = lr - lc > 0.05 or rr - rc > 0.05
            verdict = ("the random gate did as well: the edit works, but these neurons are not what makes it work"
                       if same else "the learned gate did better" if better else "the random gate did better")
            lines.append(f"A random gate of the same size, same budget: {_pct(lc)} of leaks removed, {_pct(rc)} "
                         f"refused (learned: {_pct(lr)}, {_pct(rr)}): {verdict}.")
    if measured.get("evidence"):
        lines.append(f"Evidence: {measured['evidence']}")
    return lines


__all__ = ["WORDS", "measured_lines"]
