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
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import BundleError

FORMAT = "ng-run"
VERSION = 1
TENSOR_FILES = ("masks", "deltas", "scores")


def library_versions() -> dict:
    import importlib.metadata as md

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
        """Write atomically: a temp folder renamed into place, so a crash never leaves half a run.

        An existing run folder at ``path`` is replaced only if it is a run bundle;
        any other non-empty folder is refused (never delete a user's files).
        """
        path = Path(path).expanduser()
        if path.exists():
            if not path.is_dir():
                raise BundleError(f"{path} exists and is not a folder")
            if any(path.iterdir()) and not (path / "run.json").exists():
                raise BundleError(f"{path} is a non-empty folder that is not a run bundle; choose another path")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            from safetensors.torch import save_file

            files = {}
            for name, tensors in self.tensors.items():
                if tensors:
                    fn = f"{name}.safetensors"
                    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / fn))
                    files[name] = fn
            (tmp / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=_json_default))
            meta = {
                "format": FORMAT, "version": VERSION, "kind": self.kind,
                "created": self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "model": self.model, "config": self.config, "seeds": self.seeds,
                "versions": self.versions or library_versions(), "files": files, "metrics": "metrics.json",
            }
            (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=_json_default))
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, path, adapter=None) -> "Run":
        """Read a run folder; with ``adapter``, refuse a run made for another model."""
        path = Path(path).expanduser()
        meta_p = path / "run.json"
        if not path.is_dir():
            raise BundleError(f"run folder not found: {path}")
        if not meta_p.exists():
            raise BundleError(f"{path} is not a run bundle: run.json is missing")
        try:
            meta = json.loads(meta_p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{meta_p} is corrupt: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise BundleError(f"{meta_p} is not an {FORMAT} file (format={meta.get('format') if isinstance(meta, dict) else '?'})")
        if int(meta.get("version", 0)) > VERSION:
            raise BundleError(f"{path} was written by a newer version (format {meta.get('version')}); upgrade")
        for key in ("kind", "model", "files"):
            if key not in meta:
                raise BundleError(f"{meta_p} lacks the field {key!r}")
        run = cls(kind=meta["kind"], model=meta["model"], config=meta.get("config", {}),
                  seeds=meta.get("seeds", {}), created=meta.get("created", ""),
                  versions=meta.get("versions", {}), path=path)
        if adapter is not None:
            run.check_model(adapter)
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        for name, fn in meta["files"].items():
            if name not in TENSOR_FILES or Path(fn).name != fn:
                raise BundleError(f"{meta_p} lists an unexpected file {name!r}: {fn!r}")
            fp = path / fn
            if not fp.exists():
                raise BundleError(f"{path} is incomplete: {fn} is missing")
            try:
                run.tensors[name] = load_file(str(fp))
            except (SafetensorError, OSError, ValueError) as e:
                raise BundleError(f"{fp} is corrupt: {e}") from None
        mp = path / meta.get("metrics", "metrics.json")
        if mp.exists():
            try:
                run.metrics = json.loads(mp.read_text())
            except json.JSONDecodeError as e:
                raise BundleError(f"{mp} is corrupt: {e}") from None
        return run

    def check_model(self, adapter) -> None:
        mine = self.model
        if mine.get("id") != adapter.model_id or (
                mine.get("fingerprint") and mine.get("fingerprint") != adapter.fingerprint()):
            raise BundleError(
                f"this run was made for model {mine.get('id')!r} (fingerprint {mine.get('fingerprint')}), "
                f"but the loaded model is {adapter.model_id!r} (fingerprint {adapter.fingerprint()})"
            )
        for k in ("n_layers", "hidden_size", "ffn_size"):
            if k in mine and int(mine[k]) != int(getattr(adapter, k)):
                raise BundleError(f"run {k}={mine[k]} does not match the model's {getattr(adapter, k)}")

    # ------------------------------------------------------------------ accessors
    def deltas(self):
        """The total ΔW per layer as :class:`~ng_core.interventions.Delta` objects."""
        from .interventions import Delta

        out = []
        for k, v in sorted(self.tensors.get("deltas", {}).items()):
            if "/" not in k and k.startswith("L"):
                out.append(Delta(int(k[1:]), v.float(), label=f"run {self.path.name if self.path else ''} L{k[1:]}"))
        return out

    def masks(self):
        """{category: {layer: CategoryMask}} from the saved raw masks."""
        from .localize import CategoryMask

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


def list_runs(root) -> list[dict]:
    """Summaries of the run bundles directly under ``root`` (broken ones reported, not hidden)."""
    root = Path(root).expanduser()
    out = []
    if not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith("."):
            continue
        if not (p / "run.json").exists():
            continue
        try:
            meta = json.loads((p / "run.json").read_text())
            out.append({"path": str(p), "name": p.name, "kind": meta.get("kind"), "model": meta.get("model", {}).get("id"),
                        "created": meta.get("created"), "error": None})
        except Exception as e:  # noqa: BLE001 - list everything, flag the broken
            out.append({"path": str(p), "name": p.name, "kind": None, "model": None, "created": None,
                        "error": f"run.json unreadable: {e}"})
    return out


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
