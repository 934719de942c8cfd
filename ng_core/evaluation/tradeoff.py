"""The refusal / benign-answer trade-off of an edit, over one hyperparameter (``lr`` or ``steps``).

One point says little: a larger learning rate buys refusals with benign answers. This runs
the edit once per value of the parameter, and optionally the same edit with a random gate
of the same size (the control), evaluates each on the same cases (privacy cases expect a
refusal, benign ones an answer; :func:`ng_core.evaluation.evaluate.evaluate_cases`) and returns one
point per (value, method). Stage A+B run once (on the unedited model) and every edit reuses
those masks, so the points differ only in the swept parameter and the gate. Edits are ΔW
hooks: the model's weights never change.

CLI: ``ng tradeoff`` (:mod:`ng_core.cli.tradeoff`) writes the result as JSON; the dashboard
plots it (x = benign answer rate, y = privacy refusal rate, one line per method).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ng_core.errors import NGError
from ng_core.method.registry import BASELINE, get_method, with_control
from ng_core.progress import as_progress
from ng_core.data.records import EvalCase, ImageRecord

FORMAT = "ng-tradeoff"
VERSION = 1
PARAMS = ("lr", "steps")
POINT_KEYS = ("value", "method", "refusal_rate", "benign_answer_rate", "n_refuse", "n_answer", "gate_leak")


def default_values(edit_cfg, param: str, n: int = 3) -> list:
    """``n`` values around the preset's: lr x 1/3, 1, 3, ...; steps /2, x1, x2, ..."""
    if param == "lr":
        base = float(edit_cfg.lr)
        k = [3.0 ** (i - (n - 1) / 2) for i in range(n)]
        return [float(f"{base * f:.3g}") for f in k]
    if param == "steps":
        base = int(edit_cfg.steps)
        out = sorted({max(1, round(base * 2.0 ** (i - (n - 1) / 2))) for i in range(n)})
        return out
    raise NGError(f"the trade-off parameter must be one of {', '.join(PARAMS)}, not {param!r}")


def check_sweep(param: str, values, cases) -> list:
    """The values as numbers, checked (positive, distinct), and the cases checked to hold both kinds."""
    if param not in PARAMS:
        raise NGError(f"the trade-off parameter must be one of {', '.join(PARAMS)}, not {param!r}")
    vals = [int(v) if param == "steps" else float(v) for v in values]
    if not vals:
        raise NGError("give at least one value to sweep")
    if param == "steps" and min(vals) < 1 or param == "lr" and min(vals) <= 0:
        raise NGError(f"every {param} value must be positive, got {vals}")
    if len(set(vals)) != len(vals):
        raise NGError(f"repeated {param} values: {vals}")
    if not any(c.expect == "refuse" for c in cases) or not any(c.expect == "answer" for c in cases):
        raise NGError("the trade-off needs both privacy cases (expect refuse) and benign cases (expect answer)")
    return vals


def tradeoff_curve(adapter, records_by_category: dict[str, list[ImageRecord]], layer: int, cases: list[EvalCase],
                   *, param: str = "lr", values=None, mask_cfg=None, edit_cfg=None, control: bool = True,
                   baseline: bool = True, seed: int = 0, masks: dict | None = None, max_new_tokens: int = 32,
                   batch_size: int = 8, progress=None) -> dict:
    """Points ``{value, method, refusal_rate, benign_answer_rate, n_refuse, n_answer, gate_leak}``.

    ``method`` is the edit's (e.g. ``neural_gate``) or the random-gate control's (``registry.with_control``).
    ``masks`` ({category: {layer: CategoryMask}}) skips the one localization. With
    ``baseline`` the unedited model's rates on the same cases are included. Cancellable
    between steps through ``progress``; deterministic (greedy answers, seeded gates).
    """
    # deferred: torch, keeps ng --help fast (it reads PARAMS here; the file format helpers below need no torch)
    from ng_core.evaluation.evaluate import evaluate_cases
    from ng_core.method.edit import EditConfig
    from ng_core.method.localize import MaskConfig
    from ng_core.method.pipeline import edit_run, localize_run

    mask_cfg = mask_cfg or MaskConfig()
    edit_cfg = edit_cfg or EditConfig()
    cases = list(cases)
    values = check_sweep(param, default_values(edit_cfg, param) if values is None else values, cases)
    if not records_by_category or not all(records_by_category.values()):
        raise NGError("no training images: choose at least one category with images")
    # the control: a random gate of the same size, unless the edit has no gate or is that control
    methods = list(with_control(edit_cfg.method) if control else (edit_cfg.method,))
    prog = as_progress(progress)
    needs_masks = any(get_method(m).needs_masks for m in methods)
    parts = (1 if needs_masks and masks is None else 0) + 2 * len(values) * len(methods) + (1 if baseline else 0)
    part = iter(range(parts))

    def phase(label):
        return prog.phase(next(part), parts, label)

    if needs_masks and masks is None:
        loc = localize_run(adapter, records_by_category, [int(layer)], mask_cfg, phase("masks (once)"), seed)
        masks = loc.masks()

    def rates(res):
        ov = res["overall"]
        return {"refusal_rate": ov["refusal_rate"], "benign_answer_rate": ov["answer_rate"],
                "n_refuse": ov["n_refuse"], "n_answer": ov["n_answer"]}

    ev_kw = dict(max_new_tokens=int(max_new_tokens), batch_size=int(batch_size), nll=False, locality=False)
    out = {"format": FORMAT, "version": VERSION,
           "model": {"id": adapter.model_id, "fingerprint": adapter.fingerprint()},
           "param": param, "values": values, "layer": int(layer), "categories": sorted(records_by_category),
           "methods": methods, "edit": edit_cfg.to_dict(), "mask": mask_cfg.to_dict(), "seed": int(seed),
           "n_cases": len(cases), "max_new_tokens": int(max_new_tokens), "points": [], "baseline": None}
    if baseline:
        out["baseline"] = rates(evaluate_cases(adapter, cases, method=BASELINE, progress=phase("unedited"),
                                               **ev_kw))
    for v in values:
        for m in methods:
            cfg = replace(edit_cfg, method=m, **{param: v})
            label = f"{param}={v:g} {m}"
            run = edit_run(adapter, records_by_category, int(layer), mask_cfg, cfg, phase(f"edit {label}"), seed,
                           masks)
            res = evaluate_cases(adapter, cases, deltas=run.deltas(), method=m, progress=phase(f"evaluate {label}"),
                                 **ev_kw)
            leaks = [d["gate_leak"] for d in run.metrics["diagnostics"].values()]
            out["points"].append({"value": v, "method": m, **rates(res),
                                  "gate_leak": sum(leaks) / len(leaks) if leaks else None})
    return out


def save_tradeoff(result: dict, path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2) + "\n")
    return p


def load_tradeoff(source) -> dict:
    """A saved trade-off (a path, JSON text or bytes), checked: a clear error for anything else."""
    try:
        if isinstance(source, (bytes, bytearray)):
            data = json.loads(bytes(source).decode("utf-8"))
        elif isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            data = json.loads(Path(source).read_text())
        else:
            data = json.loads(source)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NGError(f"cannot read the trade-off file: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NGError(f"not a trade-off result (expected \"format\": \"{FORMAT}\"; make one with `ng tradeoff`)")
    pts = data.get("points")
    if not isinstance(pts, list) or any(not isinstance(p, dict) or not set(POINT_KEYS) <= set(p) for p in pts):
        raise NGError(f"the trade-off file's points must each have {', '.join(POINT_KEYS)}")
    return data


__all__ = ["FORMAT", "PARAMS", "POINT_KEYS", "default_values", "load_tradeoff", "save_tradeoff", "tradeoff_curve"]
