"""Validation of a run bundle's ``run.json`` fields and tensors: a :class:`BundleError` names the field.

Every field a reader later relies on is checked when the bundle is loaded, so a malformed
bundle is refused in one line instead of failing somewhere deep in the code (or silently
applying a ΔW of the wrong shape).
"""
from __future__ import annotations

import math
import re

import torch

from ng_core.errors import BundleError

TENSOR_FILES = ("masks", "deltas", "scores")
KINDS = ("localize", "edit", "scores")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_INT_FIELDS = ("n_layers", "hidden_size", "ffn_size")


def _need(meta: dict, key: str, types, where: str, required: bool = True):
    if key not in meta:
        if required:
            raise BundleError(f"{where}: the field {key!r} is missing")
        return None
    v = meta[key]
    tt = types if isinstance(types, tuple) else (types,)
    if not isinstance(v, tt) or (isinstance(v, bool) and bool not in tt):
        names = "/".join(t.__name__ for t in tt)
        raise BundleError(f"{where}: the field {key!r} must be {names}, not {type(v).__name__}")
    return v


def check_meta(meta, where: str) -> dict:
    """Validate a parsed ``run.json``; returns it."""
    if not isinstance(meta, dict):
        raise BundleError(f"{where}: not a JSON object")
    kind = _need(meta, "kind", str, where)
    if kind not in KINDS:
        raise BundleError(f"{where}: the field 'kind' is {kind!r}; expected one of {', '.join(KINDS)}")
    model = _need(meta, "model", dict, where)
    mid = _need(model, "id", str, f"{where} model")
    if not mid:
        raise BundleError(f"{where}: the field 'model.id' is empty")
    fp = _need(model, "fingerprint", str, f"{where} model")
    if not re.fullmatch(r"[0-9a-f]{8,64}", fp):
        raise BundleError(f"{where}: the field 'model.fingerprint' is not a hex digest: {fp[:40]!r}")
    for k in _INT_FIELDS:
        v = _need(model, k, int, f"{where} model", required=False)
        if v is not None and not 0 < v < 10 ** 7:
            raise BundleError(f"{where}: the field 'model.{k}' is out of range: {v}")
    for key in ("config", "seeds", "versions"):
        _need(meta, key, dict, where, required=False)
    _need(meta, "created", str, where, required=False)
    files = _need(meta, "files", dict, where)
    for name, fn in files.items():
        if name not in TENSOR_FILES:
            raise BundleError(f"{where}: the field 'files' lists an unexpected file {name!r}")
        if not isinstance(fn, str) or fn != f"{name}.safetensors":
            raise BundleError(f"{where}: the field 'files.{name}' lists an unexpected file {fn!r} "
                              f"(must be {name + '.safetensors'!r})")
    if kind == "edit":  # its ΔW is checked against these sizes and applied: without them it could not be
        for k in ("hidden_size", "ffn_size"):
            if k not in model:
                raise BundleError(f"{where}: the field 'model.{k}' is missing; an edit run needs it to check its ΔW")
        if "deltas" not in files:
            raise BundleError(f"{where}: an edit run without deltas.safetensors in 'files' holds no weight edit")
    m = _need(meta, "metrics", str, where, required=False)
    if m is not None and (not _NAME.match(m) or not m.endswith(".json")):
        raise BundleError(f"{where}: the field 'metrics' must be a .json file name inside the run, not {m!r}")
    return meta


def _shape_err(where, key, t, want):
    return BundleError(f"{where}: tensor {key!r} has shape {tuple(t.shape)}; expected {want}")


def _layer(where: str, key: str, part: str, n_layers: int | None) -> int:
    if not re.fullmatch(r"L\d{1,6}", part):
        raise BundleError(f"{where}: tensor {key!r} does not name a layer as L<number>")
    layer = int(part[1:])
    if n_layers is not None and layer >= n_layers:
        raise BundleError(f"{where}: tensor {key!r} names layer {layer}; the model has layers 0..{n_layers - 1}")
    return layer


def check_tensors(name: str, tensors: dict, model: dict, where: str) -> None:
    """Validate one tensor file's keys, dtypes, shapes and values against ``model``'s sizes."""
    n_layers, d, ffn = (model.get(k) for k in _INT_FIELDS)
    for key, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise BundleError(f"{where}: {key!r} is not a tensor")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise BundleError(f"{where}: tensor {key!r} holds NaN or infinite values")
        parts = key.split("/")
        if name == "deltas":
            if len(parts) == 3 and parts[2] == "gate" and parts[0]:
                _layer(where, key, parts[1], n_layers)
                if t.dim() != 1 or (d and t.shape[0] != d):
                    raise _shape_err(where, key, t, f"[{d}] (a gate over the residual dims)")
                continue
            if len(parts) > 2 or not all(parts):
                raise BundleError(f"{where}: unexpected tensor name {key!r} (want L<layer> or <category>/L<layer>)")
            _layer(where, key, parts[-1], n_layers)
            if not t.is_floating_point() or t.dim() != 2 or (d and ffn and tuple(t.shape) != (d, ffn)):
                raise _shape_err(where, key, t, f"a float [{d}, {ffn}] ΔW of down_proj")
        elif name == "masks":
            if len(parts) != 3 or parts[2] not in ("raw", "freq", "selected") or not parts[0]:
                raise BundleError(f"{where}: unexpected tensor name {key!r} (want <category>/L<layer>/raw|freq|selected)")
            _layer(where, key, parts[1], n_layers)
            want_dim = 2 if parts[2] == "raw" else 1
            if t.dim() != want_dim or (d and t.shape[-1] != d):
                raise _shape_err(where, key, t, f"{want_dim} dims ending in {d}")
            for other in ("raw", "freq", "selected"):
                if f"{parts[0]}/{parts[1]}/{other}" not in tensors:
                    raise BundleError(f"{where}: mask {parts[0]}/{parts[1]} lacks its {other!r} tensor")
        elif name == "scores":
            if len(parts) < 2 or not all(parts):
                raise BundleError(f"{where}: unexpected tensor name {key!r} (want <method>/<unit>)")
            if t.dim() not in (1, 2) or (t.dim() == 2 and n_layers and t.shape[0] > n_layers):
                raise _shape_err(where, key, t, f"[layers <= {n_layers}, neurons]")


def finite_number(value, field: str, *, positive: bool = False, minimum: float | None = None,
                  maximum: float | None = None, integer: bool = False, error=BundleError):
    """``value`` as a finite number within bounds, or ``error`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{field} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise error(f"{field} must be finite, not {value}")
    if integer and int(value) != value:
        raise error(f"{field} must be a whole number, not {value}")
    if positive and value <= 0:
        raise error(f"{field} must be positive, not {value}")
    if minimum is not None and value < minimum:
        raise error(f"{field} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise error(f"{field} must be at most {maximum}, not {value}")
    return value
