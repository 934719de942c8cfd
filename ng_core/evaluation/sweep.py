"""``ng sweep``: does localisation matter? Gate size x layer x gate scope, learned vs random vs complement, over seeds.

Each *setting* (a gate-size rule, an edited layer, a gate scope) is one ``ng report`` run
(:func:`ng_core.evaluation.report_runner.run_report`) with the methods ``unedited``, ``neural_gate``, ``random_gate`` and
``complement_gate``, the first seed as the report's seed and the others as its extra seeds (each seed edits
its own sample of train images and draws its own random gate). Every stage (edit runs, evaluations) is
cached by ``run_report`` in the setting's folder ``OUT/cells/<id>``; a finished setting's numbers are kept in
``OUT/cells/<id>/cell.json``, so an interrupted sweep resumes where it stopped. The unedited model's
evaluation is the same for every setting and is computed once.

Validation and evaluation: the evaluated cases of each (split, category) cell are divided by a fixed rule
(:func:`~ng_core.evaluation.sweep_numbers.partition_rows`): the even-numbered images are the **validation** part, the odd-numbered ones the
**evaluation** part (``holdout_by="question"``: every other question of each image instead, for runs with one
image per cell). General questions alternate by question. The edited prompts (split ``train``) and the utility
probe belong to neither. :func:`~ng_core.evaluation.sweep_numbers.choose_preset` reads validation numbers only.

Outputs in ``OUT``: ``sweep.json`` (config, command, seeds, versions, model fingerprint, per-setting
per-gate per-seed numbers, aggregates, the choice), ``sweep.csv``, ``SWEEP.md``
(:mod:`ng_core.evaluation.sweep_render`) and ``preset.neural_gate.<model>.json`` (a preset candidate; the shipped presets
are never written).

This module runs a sweep; the grid is :mod:`ng_core.evaluation.sweep_grid`, the numbers and the choice
:mod:`ng_core.evaluation.sweep_numbers`. What loads the model, edits and evaluates comes in as the report's
:class:`~ng_core.evaluation.report_runner.Collaborators`.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from safetensors import safe_open

from ng_core.data import generate_dataset, load_dataset
from ng_core.evaluation.report_config import ReportConfig, ReportError, variant
from ng_core.evaluation.report_runner import Collaborators, run_report
from ng_core.evaluation.sweep_grid import (
    Setting,
    SweepConfig,
    SweepError,
    axis_settings,
    expand_grid,
)
from ng_core.evaluation.sweep_numbers import (
    SCORE_FORMULA,
    aggregate,
    choose_preset,
    gate_overlap,
    mean_sd,
    paired_by_image,
    part_metrics,
    partition_rows,
    preset_candidate,
)
from ng_core.evaluation.sweep_plot import write_curves
from ng_core.evaluation.sweep_render import render_markdown
from ng_core.method.presets import load_preset
from ng_core.method.registry import BASELINE, LEARNED, RANDOM_CONTROL, sweep_gates
from ng_core.storage.atomic_file import write_atomic
from ng_core.storage.filelock import exclusive_lock


# ------------------------------------------------------------------------------------------ running
def _lock(path: Path) -> bool:
    """Take ``path`` as a lock (a file with our pid); a lock whose process is gone is taken over."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        except FileExistsError:
            try:
                pid = int(path.read_text() or 0)
                os.kill(pid, 0)
                return False
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)
            except PermissionError:
                return False
    return False


def report_config(cfg: SweepConfig, s: Setting, out: Path, data: str) -> ReportConfig:
    """The ``ng report`` configuration of one setting (its own workdir under ``OUT/cells``)."""
    wd = out / "cells" / s.id
    return ReportConfig(
        model=cfg.model, data=data, categories=tuple(cfg.categories), methods=(BASELINE,) + tuple(g.name for g in sweep_gates()),
        layer=s.layer, max_images=cfg.max_images, questions=cfg.questions, edit_steps=cfg.edit_steps,
        mask_steps=cfg.mask_steps, lr=cfg.lr, gate_scope=s.scope, topk=s.topk, threshold=s.threshold,
        images_per_cell=cfg.images_per_cell, probe_per_category=0, max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size, seed=cfg.seeds[0], seeds=tuple(cfg.seeds[1:]), seed_controls=tuple(g.name for g in sweep_gates() if g.control),
        general=cfg.general, workdir=str(wd), out=str(wd / "report.md"), render_only=cfg.render_only,
        probe_dir=str(out / "probe"), device_map="cuda" if cfg.device == "cuda" else None,
        note=f"One setting of `{cfg.command()}`: {s.label()}.")


def cell_numbers(results: dict, summary: dict, seeds, holdout_by: str) -> dict:
    """Per gate and seed: the part metrics, and the gate's size (rows) averaged over categories."""
    per_seed: dict = {}
    sizes: dict = {}
    for g in (gate.name for gate in sweep_gates()):
        for i, sd in enumerate(seeds):
            name = g if i == 0 else variant(g, sd)
            res = results.get(name)
            if res is None:
                continue
            parts = partition_rows(res["cases"], holdout_by)
            per_seed.setdefault(g, {})[sd] = {p: part_metrics(rows) for p, rows in parts.items()}
            diag = (summary.get(name) or {}).get("diagnostics") or {}
            sizes.setdefault(g, []).extend(v.get("gate_size") for v in diag.values())
    return {"per_seed": per_seed, "gate_sizes": sizes}


def read_gates(workdir: Path, gate: str, seeds) -> tuple[dict, dict]:
    """``({place: {seed: set of gated rows}}, {place: n_rows})`` of one gate kind in a sweep cell's run bundles
    (the ``<category>/L<layer>/gate`` vectors of ``deltas.safetensors``; a place is ``passport/L15``)."""
    sets: dict = {}
    n_rows: dict = {}
    for i, sd in enumerate(seeds):
        name = gate if i == 0 else variant(gate, sd)
        path = Path(workdir) / "runs" / name.replace("@", "__").replace("=", "-") / "deltas.safetensors"
        if not path.exists():
            continue
        with safe_open(str(path), "numpy") as f:
            for k in f.keys():  # noqa: SIM118 (a safetensors handle is not iterable)
                if k.endswith("/gate"):
                    v = f.get_tensor(k)
                    sets.setdefault(k[:-len("/gate")], {})[sd] = set(v.nonzero()[0].tolist())
                    n_rows[k[:-len("/gate")]] = int(v.shape[0])
    return sets, n_rows


def gate_consistency(workdir: Path, seeds, seed_records: dict) -> dict:
    """Per gate kind (learned, random) and gated place (``passport/L15``): how many rows the gates of two seeds
    share, against chance (:func:`~ng_core.evaluation.sweep_numbers.gate_overlap`), read from the cell's run
    bundles (the ``gate`` vectors in ``deltas.safetensors``). Empty when the bundles are gone."""
    out: dict = {}
    for g in (LEARNED, RANDOM_CONTROL):
        sets, n_rows = read_gates(workdir, g, seeds)
        for place, by_seed in sets.items():
            cat = place.split("/")[0]
            recs = {sd: (seed_records.get(str(sd)) or seed_records.get(sd) or {}).get(cat) for sd in by_seed}
            images = {sd: (tuple(r) if r else None) for sd, r in recs.items()}
            ov = gate_overlap(by_seed, images, n_rows[place])
            if ov is not None:
                out.setdefault(g, {})[place] = ov
    return out


def seed_images(seed_records: dict) -> dict:
    """``{seed: (train images of every category, sorted)}`` from a cell's ``seed_records``."""
    return {str(sd): tuple(sorted(p for paths in (recs or {}).values() for p in paths))
            for sd, recs in (seed_records or {}).items()}


def run_sweep(cfg: SweepConfig, progress=None, log=None, collaborators: Collaborators | None = None) -> dict:
    """Run (or resume) every setting, aggregate, choose, write ``OUT/sweep.json``, CSV, Markdown and preset.

    ``collaborators``: what loads the model, edits and evaluates (default: the library's own functions)."""
    log = log or _to_stderr
    tools = collaborators or Collaborators()
    if len(cfg.seeds) < 1 or len(set(cfg.seeds)) != len(cfg.seeds):
        raise SweepError("give distinct --seeds (3 or more to measure the seed spread)")
    out = Path(cfg.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "probe").mkdir(exist_ok=True)
    t0 = time.monotonic()
    settings, fp, model_id = grid_on_model(cfg, tools)  # each setting's run_report loads the model itself
    data = sweep_dataset(cfg, out, log)
    log(f"sweep of {len(settings)} setting(s) x {len(sweep_gates())} gates x {len(cfg.seeds)} seeds on {cfg.model} "
        f"({fp}) into {out}")
    cells = SweepRun(cfg, settings, out, data, fp, progress, log, tools).run()
    result = assemble(cfg, settings, cells, fp, time.monotonic() - t0, model_id)
    write_outputs(result, out)
    log(f"wrote {out / 'sweep.json'}, {out / 'sweep.csv'}, {out / 'SWEEP.md'}"
        + (f" and {out / result['preset_file']}" if result.get("preset_file") else ""))
    return result


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def grid_on_model(cfg: SweepConfig, tools: Collaborators) -> tuple[list[Setting], str, str]:
    """The grid's settings on the model (its layers, its preset), the model's fingerprint and its id."""
    adapter = tools.load_model(cfg.model, device_map="cuda" if cfg.device == "cuda" else None)
    preset = load_preset(adapter.model_id, adapter.n_layers)
    return expand_grid(cfg, adapter.n_layers, preset), adapter.fingerprint(), adapter.model_id


def sweep_dataset(cfg: SweepConfig, out: Path, log) -> str:
    """The dataset folder: ``cfg.data``, or one generated once into ``OUT/data`` (a second worker waits for it)."""
    if cfg.data:
        data = cfg.data
    else:
        data = str(out / "data")
        stamp = out / "data" / ".ng-sweep.json"
        want = {"seed": cfg.data_seed, "per_category": cfg.per_category}
        out.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(out / ".data.lock"):  # a second worker waits for the first one's dataset
            if not stamp.exists() or json.loads(stamp.read_text()) != want:
                if cfg.render_only:
                    raise SweepError(f"no dataset in {out / 'data'}: run without --render-only first")
                log(f"generating the dataset in {data} (seed {cfg.data_seed}, {cfg.per_category} images per "
                    "category)")
                generate_dataset(data, seed=cfg.data_seed, per_category=cfg.per_category)
                stamp.write_text(json.dumps(want))
    ds = load_dataset(data)
    missing = [c for c in cfg.categories if c not in ds.categories]
    if missing:
        raise SweepError(f"the dataset has no categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")
    return data


def cached_cell(cpath: Path, key: str, seeds) -> dict | None:
    """A setting's ``cell.json`` from an earlier run with the same key (None: none), its derived numbers made
    again by the current code."""
    if not cpath.exists():
        return None
    try:
        old = json.loads(cpath.read_text())
    except json.JSONDecodeError:
        return None
    if old.get("key") != key:
        return None
    recs = (old.get("meta") or {}).get("seed_records")
    old["aggregate"] = aggregate(old["per_seed"])  # a pure function of per_seed: current code
    old["consistency"] = gate_consistency(cpath.parent, seeds, recs or {}) or old.get("consistency") or {}
    old["by_image"] = paired_by_image(old["per_seed"], seed_images(recs))
    return old


def cell_record(key: str, s: Setting, rc: ReportConfig, rep: dict, cfg: SweepConfig) -> dict:
    """A setting's ``cell.json``: its numbers per gate and seed and their aggregate, read from its report."""
    nums = cell_numbers(rep["results"], rep["summary"], cfg.seeds, cfg.holdout_by)
    recs = rep["meta"].get("seed_records")
    return {"key": key, "setting": s.to_dict(), "complete": not rep["meta"].get("not_run"),
            "per_seed": nums["per_seed"], "aggregate": aggregate(nums["per_seed"]),
            "gate_size": dict(zip(("mean", "sd"), mean_sd(nums["gate_sizes"].get(LEARNED, [])))),
            "meta": {k: rep["meta"][k] for k in ("command", "timings", "reused", "compute_seconds", "versions",
                                                 "mask", "edit", "train_images", "n_cases", "seed_records",
                                                 "preset", "machine")},
            "report": str(Path(rc.workdir) / "report.md"),
            "consistency": gate_consistency(Path(rc.workdir), cfg.seeds, recs or {}),
            "by_image": paired_by_image(nums["per_seed"], seed_images(recs))}


class SweepRun:
    """The settings of one sweep, worked through by this worker: each is done earlier (its ``cell.json``), done
    now, or another worker's; when every setting left is another worker's, this one helps with one."""

    def __init__(self, cfg: SweepConfig, settings: list[Setting], out: Path, data: str, fp: str, progress, log,
                 tools: Collaborators):
        self.cfg, self.settings, self.out, self.data, self.fp = cfg, settings, out, data, fp
        self.progress, self.log, self.tools = progress, log, tools
        self.n = len(settings)
        self.order = list(range(self.n))[::-1] if cfg.order == "reverse" else list(range(self.n))
        self.cells: dict = {}
        self.spent: list = []
        self.joined: set = set()

    def run(self) -> dict:
        """``{setting index: cell}`` once no setting is left (or, with ``render_only``, all cached ones)."""
        pending = list(self.order)
        while pending:
            waiting = [i for i in pending if not self.setting(i)]
            if waiting and waiting == pending:
                if not self.cfg.render_only and waiting[0] not in self.joined:
                    self.help(waiting[0])
                else:
                    time.sleep(20)
            pending = waiting
        return self.cells

    def say(self, i: int, message: str) -> None:
        self.log(f"[{i + 1}/{self.n}] {message}")

    def setting(self, i: int) -> bool:
        """Setting ``i`` from its ``cell.json`` or run now; False when another worker is on it."""
        cfg, s = self.cfg, self.settings[i]
        rc = report_config(cfg, s, self.out, self.data)
        cpath = Path(rc.workdir) / "cell.json"
        key = json.dumps({"report": rc.to_dict() | {"render_only": False, "note": ""}, "holdout_by": cfg.holdout_by,
                          "model": self.fp}, sort_keys=True, default=str)
        old = cached_cell(cpath, key, cfg.seeds)
        if old is not None:
            self.cells[i] = old
            self.say(i, f"{s.label()}: done earlier ({cpath})")
            return True
        Path(rc.workdir).mkdir(parents=True, exist_ok=True)
        lock = Path(rc.workdir) / ".lock"
        if not cfg.render_only and not _lock(lock):
            self.say(i, f"{s.label()}: another worker is on it; later")
            return False
        try:
            self.compute(i, rc, key, cpath)
        finally:
            if not cfg.render_only:
                lock.unlink(missing_ok=True)
        return True

    def compute(self, i: int, rc: ReportConfig, key: str, cpath: Path) -> None:
        """Setting ``i``'s report (its stages cached in its workdir) and its ``cell.json`` when complete."""
        say = partial(self.say, i)
        if not self.cfg.render_only:
            _ensure_unedited(self.out, rc, self.progress, log=say, tools=self.tools)
        _share_unedited(self.out, Path(rc.workdir))
        say(self.settings[i].label())
        t = time.monotonic()
        try:
            rep = run_report(rc, self.progress, log=say, collaborators=self.tools)
        except ReportError as e:
            if self.cfg.render_only:
                say(f"nothing cached ({e})")
                return
            raise
        cell = cell_record(key, self.settings[i], rc, rep, self.cfg)
        self.cells[i] = cell
        _store_unedited(self.out, Path(rc.workdir))
        if cell["complete"]:
            write_atomic(cpath, json.dumps(cell, indent=1, default=str) + "\n")
        self.spent.append(time.monotonic() - t)
        left = sum(1 for j in self.order if j not in self.cells)
        eta = f"; about {left * sum(self.spent) / len(self.spent) / 60:.0f} min left at this pace" if left else ""
        say(f"finished in {self.spent[-1]:.0f} s ({len(self.cells)}/{self.n} settings done{eta})")

    def help(self, i: int) -> None:
        """Every setting left is another worker's: help with one instead of idling. Two `ng report` processes on
        one workdir take its stages from opposite ends, each stage under its own lock; the owner writes the
        setting's summary when its last stage is done."""
        self.joined.add(i)
        rc = report_config(self.cfg, self.settings[i], self.out, self.data)
        self.say(i, f"{self.settings[i].label()}: helping the worker on it (stages from the other end)")
        run_report(replace(rc, order="forward" if rc.order == "reverse" else "reverse"), self.progress,
                   log=partial(self.say, i), collaborators=self.tools)


def _ensure_unedited(out: Path, rc: ReportConfig, progress, log, tools: Collaborators) -> None:
    """The unedited model's evaluation, made once for the whole sweep: a second worker waits for the first
    one's instead of making its own (the same cases, so the same answers)."""
    with exclusive_lock(out / ".unedited.lock", timeout_s=4 * 3600):
        _share_unedited(out, Path(rc.workdir))
        if (out / "unedited.json").exists():
            return
        run_report(replace(rc, methods=(BASELINE,), seeds=(), seed_controls=()), progress, log=log,
                   collaborators=tools)
        _store_unedited(out, Path(rc.workdir))


def _share_unedited(out: Path, workdir: Path) -> None:
    """Give a setting the unedited model's evaluation that an earlier setting made (same cases, same key)."""
    src, dst = out / "unedited.json", workdir / "results" / "unedited.json"
    if src.exists() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dst, src.read_text(encoding="utf-8"))


def _store_unedited(out: Path, workdir: Path) -> None:
    src = workdir / "results" / "unedited.json"
    if src.exists() and not (out / "unedited.json").exists():
        write_atomic(out / "unedited.json", src.read_text(encoding="utf-8"))


def assemble(cfg: SweepConfig, settings: list[Setting], cells: dict, fp: str, seconds: float,
             model_id: str | None = None) -> dict:
    """The sweep result: meta, the settings in grid order with their numbers, the axes, the choice."""
    done = [cells[i] for i in range(len(settings)) if i in cells]
    first = done[0]["meta"] if done else {}
    meta = {"config": cfg.to_dict(), "command": cfg.command(), "date": _dt.date.today().isoformat(),
            "model": {"id": model_id or cfg.model, "fingerprint": fp},
            "seeds": list(cfg.seeds), "versions": first.get("versions"), "machine": first.get("machine"),
            "report": {"mask": first.get("mask"), "edit": first.get("edit"),
                       "max_images": max((first.get("train_images") or {"": 0}).values()), "n_cases": first.get("n_cases"),
                       "preset": first.get("preset")},
            "seed_records": first.get("seed_records"), "seconds": seconds,
            "compute_seconds": sum(c["meta"]["compute_seconds"] for c in done),
            "n_settings": len(settings), "n_done": len(done), "holdout_by": cfg.holdout_by,
            "score_formula": SCORE_FORMULA}
    axes = {ax: [s.id for s in axis_settings(settings, ax)] for ax in ("gate", "layer", "scope")}
    result = {"format": "ng-sweep", "version": 1, "meta": meta, "settings": [s.to_dict() for s in settings],
              "axes": axes, "cells": done}
    choice = choose_preset(result)
    result["choice"] = choice
    return result


def csv_rows(result: dict) -> list[dict]:
    """One row per (setting, gate, part): mean and sd of every metric, and learned − random."""
    rows = []
    for c in result["cells"]:
        s = c["setting"]
        agg = c["aggregate"]
        for g, parts in agg["gates"].items():
            for part, mets in parts.items():
                row = {"setting": s["id"], "layer": s["layer"], "topk": s["topk"], "threshold": s["threshold"],
                       "scope": s["scope"], "gate": g, "part": part, "seeds": len(agg["seeds"]),
                       "gate_size": (c.get("gate_size") or {}).get("mean")}
                for met, v in mets.items():
                    row[f"{met}_mean"], row[f"{met}_sd"] = v["mean"], v["sd"]
                if g == LEARNED:
                    for met, v in (agg["learned_vs_random"].get(part) or {}).items():
                        row[f"{met}_learned_minus_random"] = v["diff"]
                        row[f"{met}_exceeds_spread"] = v["exceeds"]
                rows.append(row)
    return rows


def write_outputs(result: dict, out: Path) -> None:
    out = Path(out)
    model = result["meta"]["model"]["id"]
    pname = f"preset.neural_gate.{model}.json"
    cand = preset_candidate(result, result["choice"], str(out / "sweep.json"))
    if cand is not None:
        write_atomic(out / pname, json.dumps(cand, indent=2) + "\n")
        result["preset_file"] = pname
    else:  # no candidate now: an older one in this folder must not look current
        (out / pname).unlink(missing_ok=True)
        result.pop("preset_file", None)
    write_atomic(out / "sweep.json", json.dumps(result, indent=1, default=str) + "\n")
    rows = csv_rows(result)
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        tmp = out / f".sweep.csv.{os.getpid()}.tmp"
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, out / "sweep.csv")
    write_curves(result, out)
    write_atomic(out / "SWEEP.md", render_markdown(result))


def load_sweep(folder) -> dict:
    """A sweep folder's ``sweep.json`` (raises :class:`SweepError` when it is not one)."""
    p = Path(folder) / "sweep.json"
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SweepError(f"{p} is not a readable sweep result: {e}") from None
    if not isinstance(d, dict) or d.get("format") != "ng-sweep":
        raise SweepError(f"{p} is not a sweep result (format {d.get('format') if isinstance(d, dict) else None!r})")
    return d


def find_sweeps(root, model_id: str | None = None) -> list[Path]:
    """Sweep folders under ``root`` (``root`` itself or its subfolders), newest first; only ``model_id``'s.

    Newest by the date each sweep records, then by file time: a fresh clone gives every file the same time, so
    the file time alone would put the published sweeps in any order."""
    root = Path(root).expanduser()
    cands = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    out = []
    for p in cands:
        f = p / "sweep.json"
        if not f.is_file():
            continue
        try:
            d = load_sweep(p)
        except SweepError:
            continue
        if model_id is None or d["meta"]["model"]["id"] == model_id:
            out.append((str(d["meta"].get("date") or ""), f.stat().st_mtime, p))
    return [p for *_, p in sorted(out, key=lambda t: t[:2], reverse=True)]


__all__ = [
    "assemble",
    "cell_numbers",
    "csv_rows",
    "find_sweeps",
    "load_sweep",
    "report_config",
    "run_sweep",
    "write_outputs",
]
