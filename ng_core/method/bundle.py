"""Run bundles: every result (masks, scores, deltas, metrics) as a folder on disk.

Layout::

    RUN/run.json            kind, config, seeds, library versions, model id + fingerprint, files
    RUN/masks.safetensors   "<category>/L<layer>/raw|freq|selected"
    RUN/deltas.safetensors  "L<layer>" (the total ΔW of down_proj) and "<category>/L<layer>"
    RUN/scores.safetensors  "<method>/<unit>" [layers, neurons]
    RUN/metrics.json        anything JSON

Only JSON and safetensors are read back: nothing is ever unpickled. A run made for
another model is refused with a message naming both.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ng_core.errors import BundleError
from ng_core.method.interventions import Delta
from ng_core.method.localize import CategoryMask
from ng_core.storage import atomic_dir, safe_files, writable
from ng_core.storage.bundle_check import TENSOR_FILES, check_meta, check_tensors

FORMAT = "ng-run"
VERSION = 1
MAX_RUN_JSON_BYTES = 16 * 1024 * 1024  # run.json and metrics.json
MAX_TENSOR_FILE_BYTES = 8 * 1024 ** 3
_TOTAL = re.compile(r"L\d+")  # a layer's total ΔW in deltas.safetensors


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "neural-gate-studio", "safetensors", "captum"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


@dataclass
class Run:
    """An in-memory run bundle."""

    kind: str
    model: dict  # {"id", "fingerprint", "n_layers", "hidden_size", "ffn_size"}
    config: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=lambda: {k: {} for k in TENSOR_FILES})
    metrics: dict = field(default_factory=dict)
    created: str = ""
    versions: dict = field(default_factory=dict)
    path: Path | None = None

    @staticmethod
    def model_info(adapter) -> dict:
        return {"id": adapter.model_id, "fingerprint": adapter.fingerprint(), "n_layers": adapter.n_layers,
                "hidden_size": adapter.hidden_size, "ffn_size": adapter.ffn_size}

    @classmethod
    def new(cls, kind: str, adapter, config: dict | None = None, seeds: dict | None = None) -> "Run":
        return cls(kind=kind, model=cls.model_info(adapter), config=config or {}, seeds=seeds or {})

    # ------------------------------------------------------------------ save
    def save(self, path) -> Path:
        """Write atomically and never lossily: the new run is written beside ``path`` and swapped in
        only when complete; an existing run stays in place until then (see :mod:`ng_core.storage.atomic_dir`).

        An existing run folder at ``path`` is replaced only if it is a run bundle;
        any other non-empty folder is refused (never delete a user's files).
        """
        self.check_edit()  # an edit run that could not be loaded back is never written
        path = check_out(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_dir.recover(path.parent, path.name)
        tmp = atomic_dir.tmp_dir(path)
        try:
            files = {}
            for name, tensors in self.tensors.items():
                if tensors:
                    fn = f"{name}.safetensors"
                    # looked up at call time: tests/reliability_files.py swaps it to inject write faults
                    safetensors.torch.save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                                                str(tmp / fn))
                    files[name] = fn
            (tmp / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=_json_default))
            meta = {
                "format": FORMAT, "version": VERSION, "kind": self.kind,
                "created": self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "model": self.model, "config": self.config, "seeds": self.seeds,
                "versions": self.versions or library_versions(), "files": files, "metrics": "metrics.json",
            }
            (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=_json_default))
            check_out(path)  # still a run folder (or nothing) just before the swap
            atomic_dir.replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, path, adapter=None) -> "Run":
        """Read a run folder; with ``adapter``, refuse a run made for another model.

        Every file is read inside the folder (no symlink out, regular files only, JSON size-capped)
        and every field is validated (:mod:`ng_core.storage.bundle_check`).
        """
        path = Path(path).expanduser()
        atomic_dir.recover(path.parent, path.name)  # first: a swap stopped midway left only .NAME.old
        if not path.is_dir():
            raise BundleError(f"run folder not found: {path}")
        meta_p = path / "run.json"
        if not _exists_readable(path, meta_p):
            raise BundleError(f"{path} is not a run bundle: run.json is missing")
        meta = safe_files.read_json(safe_files.inside(path, "run.json", "run.json", BundleError), f"{meta_p}",
                                    BundleError, MAX_RUN_JSON_BYTES)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise BundleError(f"{meta_p} is not an {FORMAT} file (format={meta.get('format') if isinstance(meta, dict) else '?'})")
        version = meta.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise BundleError(f"{meta_p}: the field 'version' must be int, not {type(version).__name__}")
        if version > VERSION:
            raise BundleError(f"{path} was written by a newer version (format {version}); upgrade")
        check_meta(meta, str(meta_p))
        run = cls(kind=meta["kind"], model=meta["model"], config=meta.get("config", {}),
                  seeds=meta.get("seeds", {}), created=meta.get("created", ""),
                  versions=meta.get("versions", {}), path=path)
        if adapter is not None:
            run.check_model(adapter)  # before the tensors are read: a run for another model is refused at once
        for name, fn in meta["files"].items():
            fp = safe_files.inside(path, fn, fn, BundleError)
            if not os.path.lexists(path / fn):
                raise BundleError(f"{path} is incomplete: {fn} is missing")
            st = safe_files.regular_file(fp, fn, BundleError)
            if st.st_size > MAX_TENSOR_FILE_BYTES:
                raise BundleError(f"{path / fn} is larger than the limit of {MAX_TENSOR_FILE_BYTES:,} bytes")
            if not os.access(fp, os.R_OK):
                raise BundleError(f"{fn} cannot be read (permission denied): {path / fn}")
            try:
                run.tensors[name] = load_file(str(fp))
            except (SafetensorError, OSError, ValueError, RuntimeError) as e:
                raise BundleError(f"{path / fn} is corrupt: {e}") from None
            check_tensors(name, run.tensors[name], run.model, str(path / fn))
        run.check_edit()
        if adapter is not None:
            run.check_model(adapter)
        mname = meta.get("metrics", "metrics.json")
        if os.path.lexists(path / mname):
            mp = safe_files.inside(path, mname, "metrics", BundleError)
            run.metrics = safe_files.read_json(mp, str(path / mname), BundleError, MAX_RUN_JSON_BYTES)
            if not isinstance(run.metrics, dict):
                raise BundleError(f"{path / mname}: not a JSON object")
        return run

    def check_model(self, adapter) -> None:
        mine = self.model
        if mine.get("id") != adapter.model_id or mine.get("fingerprint") != adapter.fingerprint():
            raise BundleError(
                f"this run was made for model {mine.get('id')!r} (fingerprint {mine.get('fingerprint')}), "
                f"but the loaded model is {adapter.model_id!r} (fingerprint {adapter.fingerprint()})"
            )
        for k in ("n_layers", "hidden_size", "ffn_size"):
            if k in mine and mine[k] != int(getattr(adapter, k)):
                raise BundleError(f"run {k}={mine[k]} does not match the model's {getattr(adapter, k)}")
        want = (int(adapter.hidden_size), int(adapter.ffn_size))
        for k, v in self.tensors.get("deltas", {}).items():
            if _TOTAL.fullmatch(k) and tuple(v.shape) != want:
                raise BundleError(f"{self._name()}: its ΔW {k} has shape {tuple(v.shape)}; this model's down_proj "
                                  f"is {want}: the edit cannot be applied")

    def check_edit(self) -> None:
        """Refuse an edit run without a weight edit (no deltas file, or one without an ``L<layer>`` ΔW).

        Why: applied, it would silently mean "no edit", and the answers would be the unedited model's.
        """
        if self.kind != "edit":
            return
        totals = [k for k in self.tensors.get("deltas", {}) if _TOTAL.fullmatch(k)]
        if not totals:
            raise BundleError(f"{self._name()} is an edit run whose deltas.safetensors holds no L<layer> ΔW: "
                              "it has no weight edit to apply")

    def _name(self) -> str:
        return str(self.path) if self.path else "this run"

    # ------------------------------------------------------------------ accessors
    def deltas(self):
        """The total ΔW per layer as :class:`~ng_core.method.interventions.Delta` objects."""
        out = []
        for k, v in sorted(self.tensors.get("deltas", {}).items()):
            if "/" not in k and k.startswith("L"):
                out.append(Delta(int(k[1:]), v.float(), label=f"run {self.path.name if self.path else ''} L{k[1:]}"))
        return out

    def masks(self):
        """{category: {layer: CategoryMask}} from the saved raw masks."""
        out: dict = {}
        t = self.tensors.get("masks", {})
        for k, v in t.items():
            cat, lay, what = k.split("/")
            if what != "raw":
                continue
            layer = int(lay[1:])
            out.setdefault(cat, {})[layer] = CategoryMask(cat, layer, v, t[f"{cat}/{lay}/freq"],
                                                          t[f"{cat}/{lay}/selected"].bool())
        return out


def _exists_readable(folder: Path, f: Path) -> bool:
    """Whether ``f`` exists; a folder that cannot be read is refused as unreadable, never as "missing"."""
    try:
        os.lstat(f)
        return True
    except FileNotFoundError:
        return False
    except PermissionError:
        raise BundleError(f"run folder {folder} cannot be read (permission denied)") from None
    except OSError as e:
        raise BundleError(f"run folder {folder} cannot be read ({e.strerror or e})") from None


def _check_edit_keys(p: Path) -> None:
    """An edit run's deltas file names an ``L<layer>`` ΔW (its header only is read: listing stays cheap)."""
    fp = safe_files.inside(p, "deltas.safetensors", "deltas.safetensors", BundleError)
    safe_files.regular_file(fp, "deltas.safetensors", BundleError)
    try:
        with safe_open(str(fp), "pt") as f:
            keys = list(f.keys())
    except Exception as e:  # noqa: BLE001 - any unreadable header is a broken run
        raise BundleError(f"deltas.safetensors is corrupt: {e}") from None
    if not any(_TOTAL.fullmatch(k) for k in keys):
        raise BundleError("an edit run whose deltas.safetensors holds no L<layer> ΔW: it has no weight edit to apply")


def list_runs(root) -> list[dict]:
    """Summaries of the run bundles directly under ``root`` (broken ones reported, not hidden).

    Interrupted writes are repaired first (:func:`ng_core.storage.atomic_dir.recover`).
    """
    root = Path(root).expanduser()
    out = []
    if not root.is_dir():
        return out
    atomic_dir.recover(root)
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or not p.is_dir():
            continue
        row = {"path": str(p), "name": p.name, "kind": None, "model": None, "created": None, "error": None}
        try:
            if not _exists_readable(p, p / "run.json"):
                continue
        except BundleError:
            row["error"] = "unreadable: the folder cannot be read (permission denied or I/O error); is it a run?"
            out.append(row)
            continue
        try:
            if p.is_symlink():
                raise BundleError("the run folder is a symbolic link")
            meta = safe_files.read_json(safe_files.inside(p, "run.json", "run.json", BundleError), "run.json",
                                        BundleError, MAX_RUN_JSON_BYTES)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise BundleError(f"run.json is not an {FORMAT} file")
            check_meta(meta, "run.json")
            row.update(kind=meta["kind"], model=meta["model"]["id"], created=meta.get("created"))
            if meta["kind"] == "edit":
                _check_edit_keys(p)
        except BundleError as e:
            row["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - list everything, flag the broken
            row["error"] = f"run.json unreadable: {type(e).__name__}: {e}"
        out.append(row)
    return out


def check_out(path) -> Path:
    """Check that a run can be written at ``path`` (before any work): returns the path.

    Refused: an existing file, a folder that is not a run bundle, a filesystem root, a folder
    whose parent is a file or not writable.
    """
    path = Path(path).expanduser()
    if not str(path).strip() or path.name in ("", ".", ".."):
        raise BundleError(f"--out {str(path)!r} cannot be a run folder: name a new folder, e.g. runs/my-run")
    absolute = path.absolute()
    if absolute.parent == absolute or absolute == Path.home():
        raise BundleError(f"--out {path} cannot be a run folder: name a new folder, e.g. runs/my-run")
    if os.path.lexists(path):
        if path.is_symlink():
            raise BundleError(f"{path} is a symbolic link; choose another path")
        if not path.is_dir():
            raise BundleError(f"{path} exists and is not a folder")
        try:
            has_files = any(path.iterdir())
        except OSError as e:
            raise BundleError(f"{path} cannot be listed ({e.strerror or e})") from None
        if has_files and not (path / "run.json").is_file():
            raise BundleError(f"{path} is a non-empty folder that is not a run bundle; choose another path")
    parent = writable.nearest_existing(absolute)
    if not parent.is_dir():
        raise BundleError(f"cannot create {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BundleError(f"cannot create {path}: {parent} is not writable")
    why = writable.cannot_create_in(parent, f".{path.name}.tmp-" if parent == absolute.parent else ".ng-probe-")
    if why:
        raise BundleError(f"cannot create {path}: {parent} does not take new folders ({why})")
    return path


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
