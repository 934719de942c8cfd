"""What an ``ng sweep`` runs: its configuration and the grid of settings (gate size x layer x gate scope).

Kept apart from the runner (:mod:`ng_core.evaluation.sweep`) so that the CLI can check a grid (and the
dashboard and tests build settings) without loading a model.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, replace

from ng_core.errors import NGError
from ng_core.method.registry import GATE_SCOPES

DEFAULT_TOPK = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
DEFAULT_THRESHOLDS = (0.3,)
DEPTH_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)

#: ``--reduced``: sized for ng-mini-llava on a 2-core CPU (see README, "ng sweep").
REDUCED = {"topk": (0.01, 0.05, 0.2), "thresholds": (0.3,), "scopes": None, "seeds": (0, 1, 2), "design": "axes",
           "categories": ("passport",), "max_images": 1, "questions": 2, "edit_steps": 10, "mask_steps": 8,
           "lr": 3e-3, "images_per_cell": 1, "holdout_by": "question", "max_new_tokens": 12}


class SweepError(NGError):
    """A sweep cannot be run with these settings."""


@dataclass
class SweepConfig:
    """Everything that determines a sweep. ``None`` means: the model's preset (or, for layers, its depth)."""

    model: str = "ng-mini-llava"
    data: str | None = None  # dataset folder; None: generate one into OUT/data
    data_seed: int = 0
    per_category: int = 20
    categories: tuple = ("passport", "phone_number", "receipt", "student_id")
    topk: tuple = DEFAULT_TOPK  # top-k shares (per image, then the consensus threshold of the preset)
    thresholds: tuple = DEFAULT_THRESHOLDS  # consensus thresholds of the sign rule tanh(m) < 0 (no top-k)
    layers: tuple | None = None  # None: 5 layers across the depth, plus the preset's
    scopes: tuple | None = None  # None: the preset's scope only
    seeds: tuple = (0, 1, 2)
    design: str = "axes"  # "axes": one factor at a time around the centre; "full": every combination
    max_images: int | None = None
    questions: int | None = None
    edit_steps: int | None = None
    mask_steps: int | None = None
    lr: float | None = None
    images_per_cell: int | None = 2
    holdout_by: str = "image"  # "image" or "question": how cases are divided into validation / evaluation
    max_new_tokens: int = 16
    batch_size: int = 8
    device: str = "cpu"  # "cuda": the model on the GPU (accelerate device map)
    general: bool = True
    out: str = "out/sweep"
    order: str = "forward"  # "reverse": a second worker on the same folder takes the settings from the end
    render_only: bool = False  # aggregate only what is cached, compute nothing
    reduced: bool = False  # recorded only (the values are set by ``reduced_config``)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def command(self) -> str:
        """The ``ng sweep`` command line that reproduces this configuration."""
        d = reduced_config(self.model) if self.reduced else SweepConfig()
        parts = ["ng sweep", f"--model {self.model}"] + (["--reduced"] if self.reduced else [])
        for k, flag in (("data", "--data"), ("data_seed", "--data-seed"), ("per_category", "--per-category"),
                        ("categories", "--categories"), ("topk", "--topk"), ("thresholds", "--thresholds"),
                        ("layers", "--layers"), ("scopes", "--scopes"), ("seeds", "--seeds"), ("design", "--design"),
                        ("max_images", "--max-images"), ("questions", "--questions"), ("edit_steps", "--edit-steps"),
                        ("mask_steps", "--mask-steps"), ("lr", "--lr"), ("images_per_cell", "--images-per-cell"),
                        ("holdout_by", "--holdout-by"), ("max_new_tokens", "--max-new-tokens"),
                        ("batch_size", "--batch-size"), ("device", "--device"), ("out", "--out")):
            v = getattr(self, k)
            if v == getattr(d, k):
                continue
            if isinstance(v, tuple):
                v = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) if v else "none"
            parts.append(f"{flag} {v}")
        if not self.general:
            parts.append("--no-general")
        return " ".join(parts)


def reduced_config(model: str = "ng-mini-llava", **kw) -> SweepConfig:
    """The ``--reduced`` grid (see :data:`REDUCED`), with ``kw`` overriding any field."""
    return replace(SweepConfig(model=model, reduced=True, **REDUCED), **kw)


@dataclass(frozen=True)
class Setting:
    """One point of the grid: how the gate is chosen (``topk`` share or consensus ``threshold``), layer, scope."""

    topk: float | None
    threshold: float | None
    layer: int
    scope: str

    @property
    def gate_label(self) -> str:
        return f"top-k {100 * self.topk:g}%" if self.topk is not None else f"consensus > {self.threshold:g}"

    @property
    def id(self) -> str:
        g = f"topk{self.topk:g}" if self.topk is not None else f"thr{self.threshold:g}"
        return f"L{self.layer}__{g}__{self.scope}"

    def label(self) -> str:
        return f"layer {self.layer}, {self.gate_label}, scope {self.scope}"

    def to_dict(self) -> dict:
        return {"id": self.id, "topk": self.topk, "threshold": self.threshold, "layer": self.layer,
                "scope": self.scope, "gate": self.gate_label}


def default_layers(n_layers: int, preset_layer: int | None = None) -> tuple:
    """Five layers across the depth (10, 30, 50, 70 and 90%), plus the preset's layer; sorted, distinct."""
    out = {min(n_layers - 1, int(f * (n_layers - 1) + 0.5)) for f in DEPTH_FRACTIONS}
    if preset_layer is not None:
        out.add(int(preset_layer))
    return tuple(sorted(out))


def expand_grid(cfg: SweepConfig, n_layers: int, preset: dict) -> list[Setting]:
    """The settings of a sweep.

    Gate-size values are the top-k shares (each with the preset's consensus threshold) followed by the
    consensus thresholds of the sign rule. ``design="full"``: every (gate size, layer, scope).
    ``design="axes"``: one factor at a time around the centre (the preset's gate rule if it is among the
    values, else the first consensus threshold, else the first top-k share; the preset's layer; the preset's
    scope): all gate sizes at the centre layer and scope, all layers at the centre gate and scope, all scopes
    at the centre gate and layer.
    """
    pm, pe = preset["mask"], preset["edit"]
    gates = [(k, None) for k in cfg.topk] + [(None, t) for t in cfg.thresholds]
    if not gates:
        raise SweepError("no gate size to sweep: give --topk and/or --thresholds")
    layers = tuple(cfg.layers) if cfg.layers else default_layers(n_layers, preset["layer"])
    bad = [x for x in layers if not 0 <= int(x) < n_layers]
    if bad:
        raise SweepError(f"layer(s) {', '.join(map(str, bad))} out of range: this model has layers 0..{n_layers - 1}")
    scopes = tuple(cfg.scopes) if cfg.scopes else (pe.gate_scope,)
    bad = [s for s in scopes if s not in GATE_SCOPES]
    if bad:
        raise SweepError(f"unknown gate scope(s) {', '.join(bad)}; choose from {', '.join(GATE_SCOPES)}")
    if cfg.design not in ("axes", "full"):
        raise SweepError(f"unknown design {cfg.design!r}: axes or full")

    def mk(g, layer, scope):
        k, t = g
        return Setting(k, t if k is None else None, int(layer), scope)

    if cfg.design == "full":
        out = [mk(g, la, sc) for sc in scopes for la in layers for g in gates]
    else:
        pg = (pm.topk, None) if pm.topk is not None else (None, pm.threshold)
        cg = pg if pg in gates else next((g for g in gates if g[0] is None), gates[0])
        cl = preset["layer"] if preset["layer"] in layers else layers[len(layers) // 2]
        cs = pe.gate_scope if pe.gate_scope in scopes else scopes[0]
        out = [mk(g, cl, cs) for g in gates] + [mk(cg, la, cs) for la in layers] + [mk(cg, cl, sc) for sc in scopes]
    return list(dict.fromkeys(out))


def axis_settings(settings: list[Setting], axis: str) -> list[Setting]:
    """The settings along one axis: those that share the most common values of the other two factors."""
    if not settings:
        return []
    key = {"gate": lambda s: (s.layer, s.scope), "layer": lambda s: (s.topk, s.threshold, s.scope),
           "scope": lambda s: (s.topk, s.threshold, s.layer)}[axis]
    best = Counter(key(s) for s in settings).most_common(1)[0][0]
    out = [s for s in settings if key(s) == best]
    if axis == "layer":
        out.sort(key=lambda s: s.layer)
    return out
