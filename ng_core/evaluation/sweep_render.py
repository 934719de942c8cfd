"""Markdown for a sweep result (:mod:`ng_core.evaluation.sweep`): the curves as tables, the same way RESULTS.md shows numbers.

Cells are percentages, mean ± sample standard deviation over seeds. The curves (learned vs random vs
complement over gate size, and over layer) are plain Markdown tables with one row per x value, ready to be
pasted into RESULTS.md, above the same curves drawn as ``curves.svg`` (:mod:`.sweep_plot`); the dashboard's Edit
page draws them from ``sweep.json``.
"""
from __future__ import annotations

from ng_core.evaluation.sweep_numbers import METRICS, PARTS
from ng_core.method.registry import LEARNED, RANDOM_CONTROL, sweep_gates

CURVE_METRICS = ("leak_rate", "refusal_heldout_images", "refusal_heldout_templates", "refusal_unseen_categories",
                 "benign_answered", "general_answered")
AXIS_TITLES = {"gate": "gate size", "layer": "layer", "scope": "gate scope"}


def _ms(v: dict | None) -> str:
    if not v or v.get("mean") is None:
        return "–"
    return f"{100 * v['mean']:.1f} ± {100 * (v.get('sd') or 0):.1f}"


def _x(cell: dict, axis: str) -> str:
    s = cell["setting"]
    if axis == "gate":
        size = (cell.get("gate_size") or {}).get("mean")
        return s["gate"] + ("" if size is None else f" ({size:.0f} rows)")
    return f"L{s['layer']}" if axis == "layer" else f"`{s['scope']}`"


def curve_points(result: dict, axis: str, metric: str, part: str = "evaluation") -> dict:
    """``{"x": [labels], gate: [mean or None], gate+"_sd": [...]}`` along one axis (for tables and charts)."""
    by_id = {c["setting"]["id"]: c for c in result.get("cells", [])}
    cells = [by_id[i] for i in result.get("axes", {}).get(axis, []) if i in by_id]
    out: dict = {"x": [_x(c, axis) for c in cells], "ids": [c["setting"]["id"] for c in cells]}
    for g in (gate.name for gate in sweep_gates()):
        vals = [((c["aggregate"]["gates"].get(g) or {}).get(part) or {}).get(metric) or {} for c in cells]
        out[g] = [v.get("mean") for v in vals]
        out[g + "_sd"] = [v.get("sd") for v in vals]
    return out


def plot_axes(result: dict) -> list[str]:
    """The axes of ``result`` with at least two settings: the ones worth a curve (``curves.svg``)."""
    return [a for a in ("gate", "layer") if len(curve_points(result, a, "refusal_heldout_images")["x"]) >= 2]


def learned_vs_random_rows(result: dict, metric: str, part: str = "evaluation") -> list[dict]:
    """One row per setting: learned − random on ``metric`` (points), the seed spread, and the seed-by-seed
    comparison (better / equal / worse seeds, one-sided sign test); None where a sweep predates it."""
    rows = []
    for c in result.get("cells", []):
        v = ((c["aggregate"].get("learned_vs_random") or {}).get(part) or {}).get(metric) or {}
        if v.get("diff") is None:
            continue
        pr = v.get("paired") or {}
        rows.append({"setting": c["setting"]["id"], "learned − random (points)": round(100 * v["diff"], 1),
                     "seed spread (points)": round(100 * v["spread"], 1), "beyond the spread": bool(v["exceeds"]),
                     "seeds better–equal–worse": (f"{pr['wins']}–{pr['ties']}–{pr['losses']}" if pr.get("n") else None),
                     "sign test p": (None if pr.get("sign_p") is None else round(pr["sign_p"], 3))})
    return rows


def by_image_table(result: dict, part: str = "evaluation") -> list[str]:
    """Learned vs random image by image, for the settings where seeds drew the same train images."""
    cells = [c for c in result.get("cells", [])
             if (c.get("by_image") or {}).get("n_images", 0) < (c.get("by_image") or {}).get("n_seeds", 0)]
    if not cells:
        return []
    L = [f"### Image by image ({part} part)", "",
         ("Seeds that drew the same train images make the same learned edit, so the seed-by-seed counts above "
          "overstate the evidence for it. Here each set of train images counts once (its seeds averaged per "
          "gate): images where the learned gate is better–equal–worse, and the one-sided sign test's p."), "",
         "| setting | images (seeds) | " + " | ".join(METRICS[m][0] for m in CURVE_METRICS + ("score",)) + " |",
         "|" + "---|" * (len(CURVE_METRICS) + 3)]
    for c in cells:
        b = c["by_image"]
        cols = []
        for m in CURVE_METRICS + ("score",):
            pr = (b.get(part) or {}).get(m) or {}
            sp = "–" if pr.get("sign_p") is None else f"{pr['sign_p']:.2f}"
            cols.append(f"{pr['wins']}–{pr['ties']}–{pr['losses']}, p {sp}" if pr.get("n") else "–")
        L.append(f"| {c['setting']['id']} | {b['n_images']} ({b['n_seeds']}) | " + " | ".join(cols) + " |")
    L.append("")
    return L


def consistency_rows(result: dict) -> list[dict]:
    """One row per setting and gated place: the share of rows two seeds' gates have in common (pairs of seeds
    with different train images), learned and random, against chance; none where a sweep predates it."""
    rows = []
    for c in result.get("cells", []):
        cons = c.get("consistency") or {}
        for place, v in (cons.get(LEARNED) or {}).items():
            r = (cons.get(RANDOM_CONTROL) or {}).get(place) or {}
            rows.append({"setting": c["setting"]["id"], "gated place": place,
                         "learned: rows shared (%)": round(100 * v["overlap"], 1),
                         "random: rows shared (%)": None if not r else round(100 * r["overlap"], 1),
                         "chance (%)": round(100 * v["chance"], 1),
                         "learned / chance": round(v["overlap"] / v["chance"], 2) if v["chance"] else None,
                         "seed pairs": v["pairs"], "pairs left out (same images)": v["same_image_pairs"]})
    return rows


def consistency_table(result: dict) -> list[str]:
    rows = consistency_rows(result)
    if not rows:
        return []
    L = ["### Are the learned rows consistent across images?", "",
         ("The paper's claim is that *consistent* neurons carry the concept. For each pair of seeds that edited "
         "different train images: the share of gated rows the two gates have in common, |A ∩ B| / mean(|A|, |B|), "
         "averaged over pairs; chance is its expectation for random rows of the same sizes. Pairs of seeds with the "
         "same images are left out (a learned gate is a function of its images)."), "",
         "| setting | gated place | learned | random | chance | learned / chance | pairs (left out) |",
         "|---|---|---|---|---|---|---|"]
    for r in rows:
        rnd = "–" if r["random: rows shared (%)"] is None else f"{r['random: rows shared (%)']:.1f}%"
        ratio = "–" if r["learned / chance"] is None else f"{r['learned / chance']:.2f}x"
        L.append(f"| {r['setting']} | `{r['gated place']}` | {r['learned: rows shared (%)']:.1f}% | {rnd} | "
                 f"{r['chance (%)']:.1f}% | {ratio} | {r['seed pairs']} ({r['pairs left out (same images)']}) |")
    L.append("")
    return L


def curve_table(result: dict, axis: str, part: str = "evaluation") -> list[str]:
    by_id = {c["setting"]["id"]: c for c in result.get("cells", [])}
    cells = [by_id[i] for i in result.get("axes", {}).get(axis, []) if i in by_id]
    if len(cells) < 2:
        return []
    L = [f"### Over {AXIS_TITLES[axis]} ({part} part)", "",
         "Each cell: " + " / ".join(g.gate_title for g in sweep_gates()) + " gate.", ""]
    L.append(f"| {AXIS_TITLES[axis]} | " + " | ".join(METRICS[m][0] for m in CURVE_METRICS) + " |")
    L.append("|" + "---|" * (len(CURVE_METRICS) + 1))
    for c in cells:
        g = c["aggregate"]["gates"]
        cols = [" / ".join(_ms((g.get(gate.name) or {}).get(part, {}).get(m)) for gate in sweep_gates())
                for m in CURVE_METRICS]
        L.append(f"| {_x(c, axis)} | " + " | ".join(cols) + " |")
    L.append("")
    return L + lvr_table(cells, AXIS_TITLES[axis], axis, part)


def lvr_table(cells: list, title: str, axis: str | None, part: str = "evaluation") -> list[str]:
    """Learned − random per setting against the seed spread, with the seed-by-seed comparison."""
    L = []
    L.append(f"Learned − random (points) against the seed spread (the larger sd), {part} part; "
             "**bold** where the difference exceeds the spread. In brackets, seed by seed (both gates of a seed "
             "edit the same images): seeds where the learned gate is better–equal–worse, and the one-sided sign "
             "test's p:")
    L.append("")
    L.append(f"| {title} | " + " | ".join(METRICS[m][0] for m in CURVE_METRICS + ("score",)) + " |")
    L.append("|" + "---|" * (len(CURVE_METRICS) + 2))
    for c in cells:
        lvr = c["aggregate"].get("learned_vs_random", {}).get(part, {})
        cols = []
        for m in CURVE_METRICS + ("score",):
            v = lvr.get(m) or {}
            if v.get("diff") is None:
                cols.append("–")
                continue
            t = f"{100 * v['diff']:+.1f} vs {100 * v['spread']:.1f}"
            t = f"**{t}**" if v.get("exceeds") else t
            pr = v.get("paired") or {}
            if pr.get("n"):
                sp = "–" if pr.get("sign_p") is None else f"{pr['sign_p']:.2f}"
                t += f" ({pr['wins']}–{pr['ties']}–{pr['losses']}, p {sp})"
            cols.append(t)
        L.append(f"| {_x(c, axis) if axis else c['setting']['id']} | " + " | ".join(cols) + " |")
    L.append("")
    return L


def render_markdown(result: dict) -> str:
    meta = result["meta"]
    rc = meta.get("report") or {}
    e, mk = rc.get("edit") or {}, rc.get("mask") or {}
    L = [f"# Sweep: does localisation matter on {meta['model']['id']}?", ""]
    L.append(f"Produced on {meta['date']} ({meta.get('machine') or 'machine unknown'}); {meta['n_done']} of "
             f"{meta['n_settings']} settings computed, {meta['compute_seconds'] / 60:.1f} minutes of compute in all:")
    L += ["", "```", meta["command"], "```", ""]
    L.append(f"- Model `{meta['model']['id']}`, fingerprint `{meta['model']['fingerprint']}`; seeds "
             f"{', '.join(map(str, meta['seeds']))} (each seed edits its own sample of train images and draws its "
             "own random gate); versions: " + ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())
             + ".")
    if e:
        L.append(f"- Budget of every edit: {rc.get('max_images')} train image(s) per category, "
                 f"{e.get('questions_per_image')} paraphrase(s) per image, {e.get('steps')} Adam steps at lr "
                 f"{e.get('lr'):g}; Stage A {mk.get('steps')} steps per image. {rc.get('n_cases')} cases per "
                 "evaluation.")
    L.append(f"- Validation / evaluation: cases divided by {meta['holdout_by']} within each (split, category) cell "
             "(even ordinals validation, odd evaluation; general questions alternate). The edited prompts are in "
             "neither part. The preset candidate is chosen on the validation part only; the curves below show the "
             "evaluation part.")
    L.append("- Metrics: exact leak rate (an answer spells a true private value of its image, `ng_core/evaluation/leaks.py`), "
             "keyword refusal on held-out images / templates / unseen categories, benign questions answered, "
             "general questions answered. Percentages, mean ± sample sd over seeds.")
    L.append("")
    ch = result.get("choice") or {}
    L += ["## Preset candidate (validation part only)", "", ch.get("statement", "–"), "",
          f"Score: {meta['score_formula']}.", ""]
    if result.get("preset_file"):
        L += [f"Candidate written to `{result['preset_file']}` in this folder (the shipped presets are unchanged).",
              ""]
    if ch.get("ranking"):
        L += [("| setting | validation score | held-out refusal (learned) | learned − random (score) | spread | "
              "beats random |"), "|---|---|---|---|---|---|"]
        for r in ch["ranking"]:
            d = "–" if r["learned_minus_random"] is None else f"{r['learned_minus_random']:+.3f}"
            sp = "–" if r["spread"] is None else f"{r['spread']:.3f}"
            L.append(f"| {r['setting']['id']} | {r['score']:.3f} | {100 * r['heldout_refusal']:.1f}% | {d} | {sp} | "
                     f"{'yes' if r['beats_random'] else 'no'} |")
        L.append("")
    L += ["## Curves", ""]
    drawn = plot_axes(result)
    if drawn:
        L += [(f"![Learned, random and complement gates over {' and over '.join(AXIS_TITLES[a] for a in drawn)}: "
              "mean ± sd over seeds, evaluation part](curves.svg)"), ""]
    curves = [line for axis in ("gate", "layer", "scope") for line in curve_table(result, axis)]
    if not curves and result.get("cells"):  # no axis with two settings: still compare the gates per setting
        curves = ["### Learned vs random", ""] + lvr_table(result["cells"], "setting", None)
    L += curves
    L += by_image_table(result)
    L += consistency_table(result)
    L += ["## Every setting", ""]
    for part in PARTS:
        L.append(f"### {part.capitalize()} part")
        L.append("")
        L.append("| setting | gate | " + " | ".join(METRICS[m][0] for m in CURVE_METRICS) + " |")
        L.append("|" + "---|" * (len(CURVE_METRICS) + 2))
        for c in result.get("cells", []):
            for gate in sweep_gates():
                v = (c["aggregate"]["gates"].get(gate.name) or {}).get(part) or {}
                L.append(f"| {c['setting']['id']} | {gate.gate_title} | " + " | ".join(_ms(v.get(m)) for m in CURVE_METRICS)
                         + " |")
        L.append("")
    L.append("Per-setting reports (every method, split and diagnostic): `cells/<setting>/report.md`; per-case answers: "
             "`cells/<setting>/results/<method>.json`; all numbers: `sweep.json`, `sweep.csv`.")
    L.append("")
    return "\n".join(L)
