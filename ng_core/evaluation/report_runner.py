"""Running an ``ng report``: the dataset, the edits and evaluations with their cache, and the files written.

Edit runs and evaluation results are cached in ``--workdir`` under a key of everything that determines
them, so a rerun with the same settings only rewrites RESULTS.md (``--fresh`` recomputes); two workers on
the same workdir share the dataset and each other's finished stages. The numbers and the Markdown come from
:mod:`ng_core.evaluation.report_summary` and :mod:`ng_core.evaluation.report_render`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from ng_core.data import generate_dataset, load_dataset
from ng_core.errors import NGError
from ng_core.evaluation.report_config import (
    EDITED_SPLITS,
    ReportConfig,
    ReportError,
    parse_variant,
    stage_order,
    train_subset,
    variant,
)
from ng_core.evaluation.report_render import render_markdown
from ng_core.evaluation.report_summary import (
    seed_stats,
    summarise_methods,
    tradeoff_export,
    tradeoff_points,
)
from ng_core.evaluation.tradeoff import save_tradeoff
from ng_core.method.registry import EDIT, LEARNED, get_method, names, report_methods
from ng_core.progress import as_progress
from ng_core.storage.filelock import exclusive_lock


class NotCached(Exception):
    """A stage is not in the cache (``render_only``)."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_dataset(cfg: ReportConfig, workdir: Path, log):
    """``cfg.data``, or the dataset generated once into ``WORKDIR/data`` (a second worker waits and reuses it)."""
    if cfg.data:
        return load_dataset(cfg.data)
    folder = workdir / "data"
    stamp = folder / ".ng-report.json"
    want = {"seed": cfg.data_seed, "per_category": cfg.per_category}
    workdir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(workdir / ".data.lock"):  # a second worker on the same workdir waits, then reuses it
        if not (folder / "dataset.json").exists() or not stamp.exists() or json.loads(stamp.read_text()) != want:
            log(f"generating the dataset in {folder} (seed {cfg.data_seed}, {cfg.per_category} images per category)")
            generate_dataset(folder, seed=cfg.data_seed, per_category=cfg.per_category)
            stamp.write_text(json.dumps(want))
    return load_dataset(folder)


def select_cases(ds, categories, images_per_cell: int | None) -> list:
    """The report's cases: edited categories on the train/held-out splits, all unseen and benign controls."""
    out = []
    for split in ds.splits:
        cats = categories if split in EDITED_SPLITS else None
        cases = ds.cases(split, categories=cats)
        if images_per_cell is not None:
            keep: dict = {}
            for c in cases:
                ids = keep.setdefault(c.category, [])
                cid = c.extra.get("case_id", str(c.image))
                if cid not in ids and len(ids) < images_per_cell:
                    ids.append(cid)
            cases = [c for c in cases if c.extra.get("case_id", str(c.image)) in keep[c.category]]
        out.extend(cases)
    return out


def report_configs(cfg: ReportConfig, adapter) -> tuple:
    """``(preset, layer, mask, edit, images per category)``: the model's preset with the report's overrides."""
    from ng_core.method.presets import load_preset, resolve  # deferred: torch

    r = resolve(load_preset(adapter.model_id, adapter.n_layers), layer=cfg.layer, max_images=cfg.max_images,
                seed=cfg.seed, mask={"steps": cfg.mask_steps, "topk": cfg.topk, "threshold": cfg.threshold},
                edit={"lr": cfg.lr, "steps": cfg.edit_steps, "questions_per_image": cfg.questions,
                      "gate_scope": cfg.gate_scope})
    return r.preset, r.layer, r.mask, r.edit, r.max_images


def run_report(cfg: ReportConfig, progress=None, log=None) -> dict:
    """Run the matrix and write ``cfg.out``; returns ``{"summary", "results", "path", "seconds"}``."""
    # deferred: torch and transformers (and tests/test_sweep.py replaces edit_run and evaluate_cases on their modules)
    from ng_core.evaluation.evaluate import (  # deferred: torch; evaluate_cases resolved at call time (test_sweep)
        evaluate_cases,
        general_question_cases,
        rescore_leaks,
        utility_probe_cases,
    )
    from ng_core.method.bundle import Run  # deferred: torch
    from ng_core.method.pipeline import edit_run  # deferred: torch; resolved at call time (test_sweep swaps it)
    from ng_core.models import load_model  # deferred: torch and transformers

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    unknown = [m for m in cfg.methods if m not in report_methods()]
    if unknown:
        raise ReportError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(report_methods())}")
    prog = as_progress(progress)
    t_start = time.monotonic()
    timings: dict = {}
    workdir = Path(cfg.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    adapter = load_model(cfg.model, device_map=cfg.device_map)
    ds = prepare_dataset(cfg, workdir, log)
    timings["load model and data"] = time.monotonic() - t
    missing = [c for c in cfg.categories if c not in ds.categories]
    if missing:
        raise ReportError(f"the dataset has no categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")
    preset, layer, mask_cfg, edit_cfg, n_img = report_configs(cfg, adapter)
    all_train = {c: ds.records(category=c, split="train") for c in cfg.categories}

    def records_for(seed: int) -> dict:
        return {c: train_subset(r, n_img, seed, cfg.seed, c) for c, r in all_train.items()}

    records = records_for(cfg.seed)
    empty = [c for c, r in records.items() if not r]
    if empty:
        raise ReportError(f"no train images for {', '.join(empty)}")
    cases = select_cases(ds, list(cfg.categories), cfg.images_per_cell)
    probe_dir = Path(cfg.probe_dir) if cfg.probe_dir else workdir / "probe"
    probe = utility_probe_cases(probe_dir, ds, per_category=cfg.probe_per_category)
    cases = cases + probe
    if cfg.general:
        held = [ds.records(category=c, split="heldout_images") for c in cfg.categories]
        cases = cases + general_question_cases([rs[0].image for rs in held if rs])
    base = ds.root
    fp = adapter.fingerprint()
    cases_key = _key([(str(c.image), c.prompt, c.expect, c.split, c.category) for c in cases])
    dec = {"max_new_tokens": cfg.max_new_tokens}
    edit_key_base = {"model": fp, "layer": layer, "mask": mask_cfg.to_dict(), "edit": edit_cfg.to_dict(),
                     "records": {c: [str(r.image) for r in rs] for c, rs in records.items()}, "seed": cfg.seed}
    results: dict = {}
    runs: dict = {}
    tpath = workdir / "timings.json"
    try:
        cached_t = json.loads(tpath.read_text()) if tpath.exists() and not cfg.fresh else {}
    except json.JSONDecodeError:
        cached_t = {}
    reused: set = set()

    def remember(stage: str, key: str, seconds: float) -> None:
        timings[stage] = seconds
        cached_t[stage] = {"key": key, "seconds": seconds}
        try:  # merge with what another worker on the same workdir wrote meanwhile
            on_disk = json.loads(tpath.read_text()) if tpath.exists() else {}
        except json.JSONDecodeError:
            on_disk = {}
        cached_t.update({k: v for k, v in on_disk.items() if k not in timings})
        write_atomic(tpath, json.dumps(cached_t, indent=1))

    def recall_disk(stage: str, key: str) -> None:
        nonlocal cached_t
        if stage not in cached_t or cached_t[stage].get("key") != key:
            try:
                cached_t |= {stage: json.loads(tpath.read_text())[stage]}
            except (OSError, KeyError, json.JSONDecodeError):
                pass
        recall(stage, key)

    def recall(stage: str, key: str) -> None:
        old = cached_t.get(stage)
        if old and old.get("key") == key:
            timings[stage] = old["seconds"]
            reused.add(stage)

    (workdir / "runs").mkdir(exist_ok=True)
    (workdir / "results").mkdir(exist_ok=True)

    def get_run(method: str):
        if method in runs:
            return runs[method]
        base, kv = parse_variant(method)
        seed = kv.get("seed", cfg.seed)
        ecfg = replace(edit_cfg, method=base, seed=seed, **({"lr": kv["lr"]} if "lr" in kv else {}))
        recs = records_for(seed)
        path = workdir / "runs" / method.replace("@", "__").replace("=", "-")
        key = _key(edit_key_base | {"method": method}) if not kv else _key(
            edit_key_base | {"method": base, "edit": ecfg.to_dict(), "seed": seed,
                             "records": {c: [str(r.image) for r in rs] for c, rs in recs.items()}})
        if not cfg.fresh and (path / "run.json").exists():
            try:
                r = Run.load(path, adapter)
                if r.config.get("report_key") == key:
                    log(f"[{method}] reusing the edit run in {path}")
                    recall_disk(f"edit: {method}", key)
                    runs[method] = r
                    return r
            except NGError:
                pass
        if cfg.render_only:
            raise NotCached(f"edit: {method}")
        masks = None
        learned = variant(LEARNED, seed if "seed" in kv else None)
        if get_method(base, EDIT).needs_masks and method != learned:
            # the learned run's masks (only which rows are gated, or only the learning rate, differs)
            masks = get_run(learned).masks()
        log(f"[{method}] editing layer {layer} on {sum(len(v) for v in recs.values())} train images of "
            f"{', '.join(cfg.categories)}")
        t0 = time.monotonic()
        r = edit_run(adapter, recs, layer, mask_cfg, ecfg, prog, seed=seed, masks=masks)
        r.config.update({"preset": preset["name"], "report_key": key})
        r.save(path)
        remember(f"edit: {method}", key, time.monotonic() - t0)
        runs[method] = r
        return r

    def evaluate(method: str):
        path = workdir / "results" / f"{method}.json"
        deltas, gates, run_path = [], [], None
        if parse_variant(method)[0] in names(EDIT):
            run = get_run(method)
            deltas, run_path = run.deltas(), str(run.path)
        elif method == "inference_gate":
            from ng_core.evaluation.baselines import inference_gates  # deferred: torch

            run = get_run(LEARNED)
            gates, run_path = inference_gates(run, layer=layer), str(run.path)
        pre = results.get("unedited")
        key = _key({"method": method, "cases": cases_key, "dec": dec, "run": runs[method].config.get("report_key")
                    if method in runs else None, "gate": [g.describe() for g in gates], "model": fp,
                    "pre": pre.get("report_key") if pre else None, "bs": cfg.batch_size})
        if not cfg.fresh and path.exists():
            try:
                old = json.loads(path.read_text())
                if old.get("report_key") == key:
                    log(f"[{method}] reusing {path}")
                    recall_disk(f"evaluate: {method}", key)
                    try:  # the answers stand; their leaks follow the cases' current secrets
                        return rescore_leaks(old, cases)
                    except (ValueError, KeyError):
                        return old
            except json.JSONDecodeError:
                pass
        if cfg.render_only:
            raise NotCached(f"evaluate: {method}")
        if method == "inference_gate" and not gates:
            log("[inference_gate] the learned masks select no neuron: nothing to gate")
        log(f"[{method}] evaluating {len(cases)} cases")
        t0 = time.monotonic()
        eval_method = {"unedited": "unedited", "system_prompt": "system_prompt",
                       "inference_gate": "inference_gate" if gates else "unedited"}.get(method,
                                                                                      parse_variant(method)[0])
        res = evaluate_cases(adapter, cases, deltas=deltas, gates=gates, method=eval_method,
                             batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens, progress=prog,
                             pre_answers=pre, run=run_path, image_base=base,
                             extra={"report_key": key, "report_method": method})
        remember(f"evaluate: {method}", key, time.monotonic() - t0)
        write_atomic(path, json.dumps(res, indent=1, ensure_ascii=False) + "\n")
        return res

    ctrl = tuple(c for c in cfg.seed_controls if c in cfg.methods)
    display = stage_order(cfg.methods, cfg.seeds, cfg.seed, cfg.sweep_lrs, edit_cfg.lr, seed_controls=ctrl)
    order = stage_order(cfg.methods, cfg.seeds, cfg.seed, cfg.sweep_lrs, edit_cfg.lr, reverse=cfg.order == "reverse",
                        seed_controls=ctrl)
    not_run = []
    for m in order:
        try:
            # a second worker on this workdir reaching a stage the first one is computing (both start with the
            # unedited model) waits for it and reuses its result instead of computing it again
            with exclusive_lock(workdir / "results" / f".{m}.lock", timeout_s=4 * 3600):
                results[m] = evaluate(m)
        except NotCached as e:
            not_run.append(m)
            log(f"[{m}] not in the cache ({e}); left out of this rendering")
    if not results:
        raise ReportError(f"nothing cached in {workdir} for these settings; run without --render-only first")
    results = {m: results[m] for m in display if m in results}
    results = {m: results[m] for m in report_methods() if m in results} | results  # tables: the canonical order
    seconds = time.monotonic() - t_start
    summary = summarise_methods(results, runs)
    meta = {
        "config": cfg.to_dict(), "command": cfg.command(), "model": {"id": adapter.model_id, "fingerprint": fp,
                                                                     "source": adapter.source},
        "preset": preset["name"], "layer": layer, "mask": mask_cfg.to_dict(), "edit": edit_cfg.to_dict(),
        "train_images": {c: len(r) for c, r in records.items()}, "n_cases": len(cases),
        "dataset": {"root": str(ds.root), "seed": ds.info.get("seed", cfg.data_seed),
                    "per_category": ds.info.get("per_category")},
        "seconds": seconds, "timings": timings, "reused": sorted(reused), "not_run": not_run,
        "compute_seconds": sum(timings.values()), "date": _dt.date.today().isoformat(), "machine": machine(),
        "versions": next(iter(results.values()))["versions"],
    }
    meta["seed_records"] = {sd: {c: [str(r.image) for r in rs] for c, rs in records_for(sd).items()}
                            for sd in [cfg.seed, *cfg.seeds]}
    extra = {"seeds": seed_stats(summary, meta, cfg), "tradeoff": tradeoff_points(summary, meta, cfg)}
    (workdir / "summary.json").write_text(json.dumps({"meta": meta, "summary": summary} | extra, indent=1) + "\n")
    curve = tradeoff_export(summary, meta, cfg)
    if curve["points"]:
        save_tradeoff(curve, workdir / "tradeoff.json")
    text = render_markdown(meta, summary, results, cfg)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    log(f"wrote {out} ({seconds:.0f} s)")
    return {"summary": summary, "results": results, "path": str(out), "seconds": seconds, "meta": meta}


def machine() -> str:
    """The machine line of the report: CPU, cores visible, torch version and threads."""
    import torch  # deferred: heavy, only when a report is written

    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores visible, "
            f"torch {torch.__version__} with {torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}")
