"""The settings a page starts from, typed: the model's preset and the guided demo's.

A page reads ``preset.layer`` or ``preset.edit.lr`` and asks :meth:`Preset.resolved` for a run's settings with the
user's overrides; it never opens preset files or resolves them itself (:mod:`ng_core.method.presets` does).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ng_core.method.edit import EditConfig
from ng_core.method.localize import MaskConfig
from ng_core.method.presets import available, load_preset, resolve

#: The demo's own settings where its preset file names none: train images, held-out cases per kind, answer
#: length, gate size per layer and the time it aims at.
DEMO_DEFAULTS = {"images": 2, "heldout_per_kind": 2, "heldout_cards": 4, "max_new_tokens": 16, "gate_top": 16,
                 "seconds_hint": 90}


@dataclass(frozen=True)
class Preset:
    """A resolved preset: where to edit (``layer``), how many train images per category, the Stage A and
    Stage C settings, and what ``ng preset-search`` measured for it on held-out data (``measured``, or None)."""

    name: str
    description: str
    layer: int
    max_images: int
    mask: MaskConfig
    edit: EditConfig
    measured: dict | None = None

    @classmethod
    def load(cls, model_id: str, n_layers: int, override: str | None = None) -> "Preset":
        """The model's preset (or the shipped preset or JSON file ``override`` names)."""
        return cls._of(load_preset(model_id, n_layers, override=override))

    @classmethod
    def _of(cls, p: dict) -> "Preset":
        return cls(p["name"], p["description"], int(p["layer"]), int(p["max_images"]), p["mask"], p["edit"],
                   p.get("measured"))

    def as_dict(self) -> dict:
        """The shape :func:`ng_core.method.presets.load_preset` returns."""
        return {"name": self.name, "description": self.description, "layer": self.layer, "mask": self.mask,
                "edit": self.edit, "max_images": self.max_images, "measured": self.measured}

    def resolved(self, *, layer: int | None = None, max_images: int | None = None, schedule: str | None = None,
                 seed: int | None = None, mask: Mapping[str, Any] | None = None,
                 edit: Mapping[str, Any] | None = None) -> "Preset":
        """This preset with a run's overrides (``None`` keeps the preset's value;
        :func:`ng_core.method.presets.resolve`)."""
        r = resolve(self.as_dict(), layer=layer, max_images=max_images, schedule=schedule, seed=seed, mask=mask,
                    edit=edit)
        return replace(self, layer=int(r.layer), max_images=int(r.max_images), mask=r.mask, edit=r.edit)


@dataclass(frozen=True)
class DemoPreset(Preset):
    """The guided demo's preset: a preset plus the demo's own settings (``demo``: :data:`DEMO_DEFAULTS` and what
    the preset file overrides), whether it is a speed setting, and the model's faithful preset to compare."""

    demo: dict = field(default_factory=lambda: dict(DEMO_DEFAULTS))
    speed_setting: bool = True
    faithful: Preset | None = None

    @classmethod
    def load(cls, model_id: str, n_layers: int, override: str | None = None) -> "DemoPreset":
        p = load_preset(model_id, n_layers, method="demo")
        raw = available("demo").get(p["name"], {})
        base = Preset._of(p)
        return cls(**{f: getattr(base, f) for f in Preset.__dataclass_fields__},
                   demo={**DEMO_DEFAULTS, **raw.get("demo", {})}, speed_setting=bool(raw.get("speed_setting", True)),
                   faithful=Preset.load(model_id, n_layers))


__all__ = ["DEMO_DEFAULTS", "DemoPreset", "Preset"]
