"""The numbers of an ``ng report``: per-method headline rates, the seed statistics and the trade-off points.

Pure functions of the per-method results (``ng evaluate`` format) and edit runs; the runner stores them in
``summary.json`` and the renderer (:mod:`ng_core.evaluation.report_render`) turns them into tables.
"""
from __future__ import annotations

import math

from ng_core.evaluation.report_config import GENERAL, ReportConfig, variant
from ng_core.evaluation.tradeoff import FORMAT, VERSION
from ng_core.method.registry import BASELINE, EVALUATION, LEARNED, RANDOM_CONTROL, find_method


def _answer_rate(res, splits=None) -> tuple:
    rows = [r for r in res["cases"] if r["expect"] == "answer" and r["split"] not in ("utility_probe", GENERAL)
            and (splits is None or r["split"] in splits)]
    return (sum(r["answered"] for r in rows) / len(rows) if rows else None), len(rows)


def summarise_methods(results: dict, runs: dict) -> dict:
    """Per method: the headline numbers the tables show (rates as fractions, with their n)."""
    out = {}
    for m, res in results.items():
        s = {"splits": {}, "benign_answer": _answer_rate(res), "utility": None, "diagnostics": None}
        for split, met in res["by_split"].items():
            s["splits"][split] = {k: met.get(k) for k in ("n_refuse", "n_answer", "refusal_rate", "answer_rate",
                                                           "locality_agreement", "d_nll", "margin",
                                                           "efficacy", "accuracy", "n_expected")}
            s["splits"][split].update(_leak_metrics(met))
        ov = res["overall"]
        s["locality_agreement"] = ov.get("locality_agreement")
        s["d_nll"] = ov.get("d_nll")
        s.update(_leak_metrics(ov))
        u = res["by_split"].get("utility_probe")
        if u:
            s["utility"] = (u.get("accuracy"), u.get("n_expected"))
        rec = find_method(m)
        # an evaluation that gates the learned masks (no run of its own) shows the learned run's diagnostics
        uses_learned = rec is not None and rec.kind == EVALUATION and rec.needs_masks
        run = runs.get(m) or (runs.get(LEARNED) if uses_learned else None)
        if run is not None:
            s["diagnostics"] = run.metrics.get("diagnostics")
            s["edit_seconds"] = run.metrics.get("edit_seconds")
        out[m] = s
    return out


def _leak_metrics(met: dict) -> dict:
    """The exact leak rate (with n_secret) and the keyword judge's leak after refusal of one metrics cell;
    results written before the exact metric held the keyword one under ``leak_rate`` (no ``n_secret``)."""
    if "n_secret" not in met:
        return {"leak_rate": None, "n_secret": 0, "refusal_leak_rate": met.get("leak_rate")}
    return {"leak_rate": met.get("leak_rate"), "n_secret": met.get("n_secret") or 0,
            "refusal_leak_rate": met.get("refusal_leak_rate")}


def rate(summary, m, split, key="refusal_rate"):
    """One method's rate (``key``) on one split, or None."""
    return (summary.get(m) or {}).get("splits", {}).get(split, {}).get(key)


def pooled_heldout(summary, m):
    """Refusal over held-out images and held-out templates together (weighted by prompts)."""
    num = den = 0
    for sp in ("heldout_images", "heldout_templates"):
        c = (summary.get(m) or {}).get("splits", {}).get(sp, {})
        if c.get("refusal_rate") is not None and c.get("n_refuse"):
            num += c["refusal_rate"] * c["n_refuse"]
            den += c["n_refuse"]
    return num / den if den else None


def seed_points(summary: dict, meta: dict, cfg: ReportConfig) -> dict:
    """{seed: {"neural_gate": name, "random_gate": name}} for the seeds that have both results."""
    out = {}
    for sd in [cfg.seed] + [x for x in cfg.seeds if x != cfg.seed]:
        ng, rg = ((LEARNED, RANDOM_CONTROL) if sd == cfg.seed else
                  (variant(LEARNED, sd), variant(RANDOM_CONTROL, sd)))
        if ng in summary and rg in summary:
            out[sd] = {LEARNED: ng, RANDOM_CONTROL: rg}
    return out


def mean_sd(xs) -> tuple:
    """(mean, sample standard deviation) of the values that are not None; (None, None) if none; sd 0 for one."""
    xs = [float(x) for x in xs if x is not None]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


SEED_METRICS = (("held-out refusal", lambda S, m: pooled_heldout(S, m)),
                ("benign answers", lambda S, m: S[m]["benign_answer"][0]),
                ("general questions answered", lambda S, m: rate(S, m, GENERAL, "answer_rate")))


def seed_stats(summary: dict, meta: dict, cfg: ReportConfig) -> dict:
    """Per metric: learned and random values per seed, their mean and sample sd, the mean difference."""
    pts = seed_points(summary, meta, cfg)
    out = {}
    for name, f in SEED_METRICS:
        lv = [f(summary, v[LEARNED]) for v in pts.values()]
        rv = [f(summary, v[RANDOM_CONTROL]) for v in pts.values()]
        (lm, ls), (rm, rs) = mean_sd(lv), mean_sd(rv)
        out[name] = {"learned": lv, "random": rv, "learned_mean": lm, "learned_sd": ls, "random_mean": rm,
                     "random_sd": rs, "diff": None if None in (lm, rm) else lm - rm,
                     "spread": None if None in (ls, rs) else max(ls, rs)}
    return {"seeds": list(pts), "metrics": out}


def tradeoff_points(summary: dict, meta: dict, cfg: ReportConfig) -> list[dict]:
    """One point per (learning rate, gate): held-out refusal, benign and general answer rates."""
    base_lr = meta["edit"]["lr"]
    lrs = sorted({base_lr, *cfg.sweep_lrs})
    out = []
    for lr in lrs:
        for gate in (LEARNED, RANDOM_CONTROL):
            name = gate if lr == base_lr else variant(gate, lr=lr)
            if name not in summary:
                continue
            out.append({"lr": lr, "method": gate, "name": name,
                        "heldout_images": rate(summary, name, "heldout_images"),
                        "heldout_templates": rate(summary, name, "heldout_templates"),
                        "benign_answer": summary[name]["benign_answer"][0],
                        "general_answer": rate(summary, name, GENERAL, "answer_rate"),
                        "gate_leak": mean_sd([v.get("gate_leak") for v in
                                               (summary[name].get("diagnostics") or {}).values()])[0]})
    return out


def tradeoff_export(summary: dict, meta: dict, cfg: ReportConfig) -> dict:
    """The lr sweep in ``ng tradeoff``'s format, so the dashboard's Edit page can load and draw it.

    Refusal is pooled over held-out images and templates; benign answers are the report's benign rate.
    """
    def n_of(name, key, splits):
        return sum((summary[name]["splits"].get(sp, {}).get(key) or 0) for sp in splits)

    held = ("heldout_images", "heldout_templates")
    pts = [{"value": p["lr"], "method": p["method"], "refusal_rate": pooled_heldout(summary, p["name"]),
            "benign_answer_rate": p["benign_answer"], "n_refuse": n_of(p["name"], "n_refuse", held),
            "n_answer": summary[p["name"]]["benign_answer"][1], "gate_leak": p["gate_leak"]}
           for p in tradeoff_points(summary, meta, cfg)]
    base = None
    if BASELINE in summary:
        base = {"refusal_rate": pooled_heldout(summary, BASELINE),
                "benign_answer_rate": summary[BASELINE]["benign_answer"][0],
                "n_refuse": n_of(BASELINE, "n_refuse", held), "n_answer": summary[BASELINE]["benign_answer"][1]}
    return {"format": FORMAT, "version": VERSION, "model": meta["model"], "param": "lr",
            "values": sorted({p["value"] for p in pts}), "layer": meta["layer"], "categories": list(cfg.categories),
            "methods": sorted({p["method"] for p in pts}), "edit": meta["edit"], "mask": meta["mask"],
            "seed": cfg.seed, "n_cases": meta["n_cases"], "max_new_tokens": cfg.max_new_tokens, "points": pts,
            "baseline": base, "source": "ng report (" + meta["command"] + ")"}
