"""Running an ``ng report``: the dataset, the edits and evaluations with their cache, and the files written.

Edit runs and evaluation results are cached in ``--workdir`` under a key of everything that determines
them, so a rerun with the same settings only rewrites RESULTS.md (``--fresh`` recomputes); two workers on
the same workdir share the dataset and each other's finished stages. The numbers and the Markdown come from
:mod:`ng_core.evaluation.report_summary` and :mod:`ng_core.evaluation.report_render`.

:func:`run_report` reads as its steps (the methods of :class:`ReportRun`); what loads the model, edits and
evaluates comes in as :class:`Collaborators`, the library's own functions unless a caller passes others.
This module loads torch: the CLI imports it when a report runs, not for ``ng --help``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from ng_core.data import generate_dataset, load_dataset
from ng_core.errors import NGError
from ng_core.evaluation.baselines import inference_gates
from ng_core.evaluation.evaluate import evaluate_cases, rescore_leaks
from ng_core.evaluation.probe_cases import general_question_cases, utility_probe_cases
from ng_core.evaluation.report_config import (
    EDITED_SPLITS,
    ReportConfig,
    ReportError,
    check_methods,
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
from ng_core.method.bundle import Run
from ng_core.method.pipeline import edit_run
from ng_core.method.presets import load_preset, resolve
from ng_core.method.registry import BASELINE, EDIT, LEARNED, NEEDS, get_method, report_methods
from ng_core.models import load_model
from ng_core.progress import as_progress
from ng_core.storage.atomic_file import write_atomic
from ng_core.storage.filelock import exclusive_lock


class NotCached(Exception):
    """A stage is not in the cache (``render_only``)."""


@dataclass(frozen=True)
class Collaborators:
    """What a report calls to load the model, edit and evaluate: the library's own functions by default; a caller
    (a test counting the edits, two workers sharing one model) passes others with the same signatures."""

    load_model: Callable = load_model
    edit_run: Callable = edit_run
    evaluate_cases: Callable = evaluate_cases
    inference_gates: Callable = inference_gates


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
    r = resolve(load_preset(adapter.model_id, adapter.n_layers), layer=cfg.layer, max_images=cfg.max_images,
                seed=cfg.seed, mask={"steps": cfg.mask_steps, "topk": cfg.topk, "threshold": cfg.threshold},
                edit={"lr": cfg.lr, "steps": cfg.edit_steps, "questions_per_image": cfg.questions,
                      "gate_scope": cfg.gate_scope})
    return r.preset, r.layer, r.mask, r.edit, r.max_images


def run_report(cfg: ReportConfig, progress=None, log=None, collaborators: Collaborators | None = None) -> dict:
    """Run the matrix and write ``cfg.out``; returns ``{"summary", "results", "path", "seconds", "meta"}``.

    ``collaborators``: what loads the model, edits and evaluates (default: the library's own functions)."""
    check_methods(cfg.methods)
    report = ReportRun(cfg, progress, log, collaborators or Collaborators())
    report.load_model_and_data()
    report.choose_settings()
    report.choose_cases()
    report.run_stages()
    return report.write_files()


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StageTimes:
    """The seconds of each stage of this rendering, and the stage cache ``WORKDIR/timings.json``
    (``{stage: {"key", "seconds"}}``, shared with the other workers on the workdir): a stage reused from the
    cache reports the seconds it took when it was computed."""

    def __init__(self, path: Path, fresh: bool, seconds: dict):
        self.path = path
        self.seconds = seconds
        self.reused: set = set()
        try:
            self.cached = json.loads(path.read_text()) if path.exists() and not fresh else {}
        except json.JSONDecodeError:
            self.cached = {}

    def remember(self, stage: str, key: str, seconds: float) -> None:
        """A stage computed now: its seconds, written to the cache."""
        self.seconds[stage] = seconds
        self.cached[stage] = {"key": key, "seconds": seconds}
        try:  # merge with what another worker on the same workdir wrote meanwhile
            on_disk = json.loads(self.path.read_text()) if self.path.exists() else {}
        except json.JSONDecodeError:
            on_disk = {}
        self.cached.update({k: v for k, v in on_disk.items() if k not in self.seconds})
        write_atomic(self.path, json.dumps(self.cached, indent=1))

    def recall_disk(self, stage: str, key: str) -> None:
        """A stage reused: its seconds from the cache, read again from disk (another worker may have made it)."""
        if stage not in self.cached or self.cached[stage].get("key") != key:
            try:
                self.cached |= {stage: json.loads(self.path.read_text())[stage]}
            except (OSError, KeyError, json.JSONDecodeError):
                pass
        self.recall(stage, key)

    def recall(self, stage: str, key: str) -> None:
        old = self.cached.get(stage)
        if old and old.get("key") == key:
            self.seconds[stage] = old["seconds"]
            self.reused.add(stage)


class ReportRun:
    """One ``ng report`` under way: :func:`run_report` calls its steps in order, and each keeps what it found."""

    def __init__(self, cfg: ReportConfig, progress, log, tools: Collaborators):
        self.cfg, self.tools = cfg, tools
        self.log = log or _to_stderr
        self.prog = as_progress(progress)
        self.t_start = time.monotonic()
        self.workdir = Path(cfg.workdir)
        self.timings: dict = {}
        self.results: dict = {}
        self.runs: dict = {}
        self.not_run: list = []
        self.adapter = self.ds = self.stages = None
        self.preset = self.layer = self.mask_cfg = self.edit_cfg = self.n_img = None
        self.all_train: dict = {}
        self.records: dict = {}
        self.cases: list = []

    # ---------------------------------------------------------------- the steps
    def load_model_and_data(self) -> None:
        """The model and the dataset (generated into ``WORKDIR/data`` without ``cfg.data``)."""
        cfg = self.cfg
        self.workdir.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        self.adapter = self.tools.load_model(cfg.model, device_map=cfg.device_map)
        self.ds = prepare_dataset(cfg, self.workdir, self.log)
        self.timings["load model and data"] = time.monotonic() - t
        missing = [c for c in cfg.categories if c not in self.ds.categories]
        if missing:
            raise ReportError(f"the dataset has no categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")

    def choose_settings(self) -> None:
        """The model's preset with the report's overrides, and the train records of the report's seed."""
        cfg = self.cfg
        self.preset, self.layer, self.mask_cfg, self.edit_cfg, self.n_img = report_configs(cfg, self.adapter)
        self.all_train = {c: self.ds.records(category=c, split="train") for c in cfg.categories}
        self.records = self.records_for(cfg.seed)
        empty = [c for c, r in self.records.items() if not r]
        if empty:
            raise ReportError(f"no train images for {', '.join(empty)}")

    def choose_cases(self) -> None:
        """The evaluated cases (the splits, the utility probe, the general questions) and the cache keys' parts."""
        cfg, ds = self.cfg, self.ds
        cases = select_cases(ds, list(cfg.categories), cfg.images_per_cell)
        probe_dir = Path(cfg.probe_dir) if cfg.probe_dir else self.workdir / "probe"
        cases = cases + utility_probe_cases(probe_dir, ds, per_category=cfg.probe_per_category)
        if cfg.general:
            held = [ds.records(category=c, split="heldout_images") for c in cfg.categories]
            cases = cases + general_question_cases([rs[0].image for rs in held if rs])
        self.cases = cases
        self.fp = self.adapter.fingerprint()
        self.cases_key = _key([(str(c.image), c.prompt, c.expect, c.split, c.category) for c in cases])
        self.edit_key_base = {"model": self.fp, "layer": self.layer, "mask": self.mask_cfg.to_dict(),
                              "edit": self.edit_cfg.to_dict(), "records": _image_names(self.records),
                              "seed": cfg.seed}

    def run_stages(self) -> None:
        """Every stage in the worker's order, each under its lock (a second worker reaching a stage the first is
        computing waits and reuses it); with ``render_only``, the stages not cached are left out."""
        cfg = self.cfg
        self.stages = StageTimes(self.workdir / "timings.json", cfg.fresh, self.timings)
        (self.workdir / "runs").mkdir(exist_ok=True)
        (self.workdir / "results").mkdir(exist_ok=True)
        ctrl = tuple(c for c in cfg.seed_controls if c in cfg.methods)
        display = stage_order(cfg.methods, cfg.seeds, cfg.seed, cfg.sweep_lrs, self.edit_cfg.lr, seed_controls=ctrl)
        order = stage_order(cfg.methods, cfg.seeds, cfg.seed, cfg.sweep_lrs, self.edit_cfg.lr,
                            reverse=cfg.order == "reverse", seed_controls=ctrl)
        for m in order:
            try:
                with exclusive_lock(self.workdir / "results" / f".{m}.lock", timeout_s=4 * 3600):
                    self.results[m] = self.evaluate(m)
            except NotCached as e:
                self.not_run.append(m)
                self.log(f"[{m}] not in the cache ({e}); left out of this rendering")
        if not self.results:
            raise ReportError(f"nothing cached in {self.workdir} for these settings; run without --render-only first")
        results = {m: self.results[m] for m in display if m in self.results}
        self.results = {m: results[m] for m in report_methods() if m in results} | results  # the canonical order

    def write_files(self) -> dict:
        """``WORKDIR/summary.json``, ``WORKDIR/tradeoff.json`` (with edit points) and the report ``cfg.out``."""
        cfg = self.cfg
        seconds = time.monotonic() - self.t_start
        summary = summarise_methods(self.results, self.runs)
        meta = self.meta(seconds)
        extra = {"seeds": seed_stats(summary, meta, cfg), "tradeoff": tradeoff_points(summary, meta, cfg)}
        (self.workdir / "summary.json").write_text(json.dumps({"meta": meta, "summary": summary} | extra,
                                                              indent=1) + "\n")
        curve = tradeoff_export(summary, meta, cfg)
        if curve["points"]:
            save_tradeoff(curve, self.workdir / "tradeoff.json")
        text = render_markdown(meta, summary, self.results, cfg)
        out = Path(cfg.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        self.log(f"wrote {out} ({seconds:.0f} s)")
        return {"summary": summary, "results": self.results, "path": str(out), "seconds": seconds, "meta": meta}

    # ---------------------------------------------------------------- what the steps use
    def records_for(self, seed: int) -> dict:
        """The train records one seed edits on, per category."""
        return {c: train_subset(r, self.n_img, seed, self.cfg.seed, c) for c, r in self.all_train.items()}

    def get_run(self, method: str):
        """The edit run of ``method`` (a variant name), from the cache or made now (and cached)."""
        if method in self.runs:
            return self.runs[method]
        cfg = self.cfg
        base, kv = parse_variant(method)
        seed = kv.get("seed", cfg.seed)
        ecfg = replace(self.edit_cfg, method=base, seed=seed, **({"lr": kv["lr"]} if "lr" in kv else {}))
        recs = self.records_for(seed)
        path = self.workdir / "runs" / method.replace("@", "__").replace("=", "-")
        key = _key(self.edit_key_base | {"method": method}) if not kv else _key(
            self.edit_key_base | {"method": base, "edit": ecfg.to_dict(), "seed": seed, "records": _image_names(recs)})
        r = self._cached_run(method, path, key)
        if r is not None:
            self.runs[method] = r
            return r
        if cfg.render_only:
            raise NotCached(f"edit: {method}")
        masks = None
        learned = variant(LEARNED, seed if "seed" in kv else None)
        if get_method(base, EDIT).needs_masks and method != learned:
            # the learned run's masks (only which rows are gated, or only the learning rate, differs)
            masks = self.get_run(learned).masks()
        self.log(f"[{method}] editing layer {self.layer} on {sum(len(v) for v in recs.values())} train images of "
                 f"{', '.join(cfg.categories)}")
        t0 = time.monotonic()
        r = self.tools.edit_run(self.adapter, recs, self.layer, self.mask_cfg, ecfg, self.prog, seed=seed,
                                masks=masks)
        r.config.update({"preset": self.preset["name"], "report_key": key})
        r.save(path)
        self.stages.remember(f"edit: {method}", key, time.monotonic() - t0)
        self.runs[method] = r
        return r

    def _cached_run(self, method: str, path: Path, key: str):
        if self.cfg.fresh or not (path / "run.json").exists():
            return None
        try:
            r = Run.load(path, self.adapter)
        except NGError:
            return None
        if r.config.get("report_key") != key:
            return None
        self.log(f"[{method}] reusing the edit run in {path}")
        self.stages.recall_disk(f"edit: {method}", key)
        return r

    def evaluate(self, method: str) -> dict:
        """The evaluation of ``method`` (a variant name), from the cache or made now (and cached)."""
        cfg = self.cfg
        path = self.workdir / "results" / f"{method}.json"
        deltas, gates, run_path = self._edit_of(method)
        m = get_method(parse_variant(method)[0])
        pre = self.results.get(BASELINE)
        key = _key({"method": method, "cases": self.cases_key, "dec": {"max_new_tokens": cfg.max_new_tokens},
                    "run": self.runs[method].config.get("report_key") if method in self.runs else None,
                    "gate": [g.describe() for g in gates], "model": self.fp,
                    "pre": pre.get("report_key") if pre else None, "bs": cfg.batch_size})
        old = self._cached_result(method, path, key)
        if old is not None:
            return old
        if cfg.render_only:
            raise NotCached(f"evaluate: {method}")
        if m.takes_gates == NEEDS and not gates:
            self.log(f"[{method}] the learned masks select no neuron: nothing to gate")
        self.log(f"[{method}] evaluating {len(self.cases)} cases")
        t0 = time.monotonic()
        # a method whose gates select nothing is the unedited model (and says so in its result)
        eval_method = BASELINE if m.takes_gates == NEEDS and not gates else m.name
        res = self.tools.evaluate_cases(self.adapter, self.cases, deltas=deltas, gates=gates, method=eval_method,
                                        batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens,
                                        progress=self.prog, pre_answers=pre, run=run_path, image_base=self.ds.root,
                                        extra={"report_key": key, "report_method": method})
        self.stages.remember(f"evaluate: {method}", key, time.monotonic() - t0)
        write_atomic(path, json.dumps(res, indent=1, ensure_ascii=False) + "\n")
        return res

    def _edit_of(self, method: str) -> tuple:
        """``(deltas, gates, run path)`` that ``method`` evaluates with: an edit's deltas, or the inference gate."""
        m = get_method(parse_variant(method)[0])
        if m.edits:
            run = self.get_run(method)
            return run.deltas(), [], str(run.path)
        if m.takes_gates == NEEDS:  # the learned masks, gated at inference time
            run = self.get_run(LEARNED)
            return [], self.tools.inference_gates(run, layer=self.layer), str(run.path)
        return [], [], None

    def _cached_result(self, method: str, path: Path, key: str) -> dict | None:
        if self.cfg.fresh or not path.exists():
            return None
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        if old.get("report_key") != key:
            return None
        self.log(f"[{method}] reusing {path}")
        self.stages.recall_disk(f"evaluate: {method}", key)
        try:  # the answers stand; their leaks follow the cases' current secrets
            return rescore_leaks(old, self.cases)
        except (ValueError, KeyError):
            return old

    def meta(self, seconds: float) -> dict:
        """The report's settings, model, data, timings and machine (``summary.json``'s ``meta``)."""
        cfg, ds, a = self.cfg, self.ds, self.adapter
        meta = {
            "config": cfg.to_dict(), "command": cfg.command(),
            "model": {"id": a.model_id, "fingerprint": self.fp, "source": a.source},
            "preset": self.preset["name"], "layer": self.layer, "mask": self.mask_cfg.to_dict(),
            "edit": self.edit_cfg.to_dict(), "train_images": {c: len(r) for c, r in self.records.items()},
            "n_cases": len(self.cases),
            "dataset": {"root": str(ds.root), "seed": ds.info.get("seed", cfg.data_seed),
                        "per_category": ds.info.get("per_category")},
            "seconds": seconds, "timings": self.timings, "reused": sorted(self.stages.reused),
            "not_run": self.not_run, "compute_seconds": sum(self.timings.values()),
            "date": _dt.date.today().isoformat(), "machine": machine(),
            "versions": next(iter(self.results.values()))["versions"],
        }
        meta["seed_records"] = {sd: _image_names(self.records_for(sd)) for sd in [cfg.seed, *cfg.seeds]}
        return meta


def _image_names(records: dict) -> dict:
    return {c: [str(r.image) for r in rs] for c, rs in records.items()}


def machine() -> str:
    """The machine line of the report: CPU, cores visible, torch version and threads."""
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores visible, "
            f"torch {torch.__version__} with {torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}")
