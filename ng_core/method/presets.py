"""Per-model hyperparameter presets (one JSON file per method x model, like EasyEdit's matrix).

A preset is chosen by matching the model id against each file's ``match`` list;
``neural_gate.default.json`` (the authors' values) applies otherwise. Every run
bundle stores the resolved preset, so a run can always be reproduced.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from ng_core.errors import ArgumentError, NGError
from ng_core.method.edit import EditConfig
from ng_core.method.localize import MaskConfig
from ng_core.storage.bundle_check import finite_number
from ng_core.storage.safe_files import read_json

PRESET_DIR = Path(__file__).with_name("presets")


def available(method: str = "neural_gate") -> dict[str, dict]:
    out = {}
    for p in sorted(PRESET_DIR.glob(f"{method}.*.json")):
        out[p.stem.split(".", 1)[1]] = json.loads(p.read_text())
    return out


def preset_name(model_id: str, method: str = "neural_gate") -> str:
    mid = model_id.lower()
    for name, data in available(method).items():
        if any(m.lower() in mid for m in data.get("match", [])):
            return name
    return "default"


def load_preset(model_id: str, n_layers: int, method: str = "neural_gate", override: str | None = None) -> dict:
    """The resolved preset: ``{"name", "layer", "mask": MaskConfig, "edit": EditConfig, "max_images", "measured"}``
    (``measured``: the numbers ``ng preset-search`` measured for it on the world set's test part, or None).

    ``override`` names a shipped preset or a JSON file of the same shape; ``"demo"`` is the model's guided-demo
    preset (``demo.<model>.json``, a speed setting: ``ng edit --preset demo``).
    """
    if override == "demo" and method != "demo":
        return load_preset(model_id, n_layers, method="demo")
    presets = available(method)
    if override:
        if override in presets:
            name, data = override, presets[override]
        elif Path(override).is_file():
            name, data = str(override), read_json(override, f"preset file {override}", NGError, 1 << 20)
        else:
            raise NGError(f"unknown preset {override!r}; shipped presets: {', '.join(presets)}")
    else:
        name = preset_name(model_id, method)
        data = presets[name]
    if not isinstance(data, dict) or not all(isinstance(data.get(k, {}), dict) for k in ("mask", "edit")):
        raise NGError(f"preset {name} must be a JSON object whose 'mask' and 'edit' are objects")
    unknown = set(data.get("mask", {})) - set(MaskConfig.__dataclass_fields__) | (
        set(data.get("edit", {})) - set(EditConfig.__dataclass_fields__))
    if unknown:
        raise NGError(f"preset {name} has unknown keys: {', '.join(sorted(unknown))}")
    try:
        layer = data.get("layer")
        if layer is None:
            frac = finite_number(data.get("layer_fraction", 0.34375), "layer_fraction", minimum=0, maximum=1,
                                 error=NGError)
            layer = int(round(frac * n_layers))
        layer = min(finite_number(layer, "layer", integer=True, minimum=0, error=NGError), n_layers - 1)
        max_images = finite_number(data.get("max_images", 10), "max_images", integer=True, minimum=1, error=NGError)
        mask, edit = MaskConfig(**data.get("mask", {})), EditConfig(**data.get("edit", {}))
    except (NGError, TypeError, ValueError) as e:
        raise NGError(f"preset {name}: {e}") from None
    measured = data.get("measured")
    return {"name": name, "description": data.get("description", ""), "layer": int(layer),
            "mask": mask, "edit": edit, "max_images": int(max_images),
            "measured": measured if isinstance(measured, dict) else None}


def preset_json(p: dict) -> dict:
    """A resolved preset as plain JSON (for run bundles, the CLI and the UI)."""
    out = {"name": p["name"], "description": p["description"], "layer": p["layer"],
           "mask": p["mask"].to_dict(), "edit": p["edit"].to_dict(), "max_images": p["max_images"]}
    if p.get("measured"):
        out["measured"] = p["measured"]
    return out


class Resolved(NamedTuple):
    """A preset with a run's overrides applied: what an edit, a localization or a report actually uses."""

    preset: dict  # the loaded preset (:func:`load_preset`), unchanged
    layer: int | str  # the edited layer; a comma-separated string when the caller gave several
    mask: MaskConfig
    edit: EditConfig
    max_images: int  # train images per category


def resolve(preset: dict, *, layer: int | str | None = None, max_images: int | None = None,
            schedule: str | None = None, seed: int | None = None, mask: Mapping[str, Any] | None = None,
            edit: Mapping[str, Any] | None = None) -> Resolved:
    """The one place where a preset (:func:`load_preset`) meets the overrides of a command, report or page.

    Every override that is ``None`` keeps the preset's value: ``mask`` and ``edit`` map
    :class:`MaskConfig` / :class:`EditConfig` field names to values; ``schedule`` sets both configs'
    schedule; ``seed`` the edit's seed. Nothing is checked here beyond what the configs check themselves
    (see :func:`check_layers` for the layer).
    """
    m, e = preset["mask"], preset["edit"]
    if schedule:
        m, e = replace(m, schedule=schedule), replace(e, schedule=schedule)
    m = replace(m, **{k: v for k, v in (mask or {}).items() if v is not None})
    e = replace(e, **{k: v for k, v in (edit or {}).items() if v is not None})
    if seed is not None:
        e = replace(e, seed=seed)
    return Resolved(preset, preset["layer"] if layer is None else layer, m, e,
                    preset["max_images"] if max_images is None else max_images)


def check_layers(layer: int | str, n_layers: int) -> None:
    """Raise :class:`~ng_core.errors.ArgumentError` unless every layer of ``layer`` ("3" or "3,5") is in range."""
    for lay in str(layer).split(","):
        if not 0 <= int(lay) < n_layers:
            raise ArgumentError(f"layer {lay} is out of range: this model has layers 0..{n_layers - 1}")
