"""Interventions: gates on neurons and weight deltas, applied as scoped hooks, never in place.

A :class:`Gate` scales chosen neurons of one layer (residual dims = the paper's
neurons, or FFN neurons = ``down_proj`` inputs) at the subject token or at every
position. A :class:`Delta` adds ``x @ ΔWᵀ`` to one ``down_proj`` output, which equals
running with ``W + ΔW`` without touching ``W``: revert is exact by construction and
two sessions sharing the model can hold different edits.

Positions are matched through the ``position_ids`` the decoder layers receive, so
the same hook is right for padded batches, prefix caches and token-by-token decoding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ng_core.models.hooks import HookSpec, layer_output_tensor, replace_layer_output

UNITS = ("residual", "ffn")
WHERE = ("subject", "all")


@dataclass
class Gate:
    """Scale ``neurons`` of ``layer`` by ``scale`` (a float, or one value per neuron)."""

    layer: int
    neurons: torch.Tensor  # long indices
    scale: float | torch.Tensor = 0.0
    where: str = "subject"
    unit: str = "residual"
    label: str = ""

    def __post_init__(self):
        self.neurons = torch.as_tensor(self.neurons, dtype=torch.long).reshape(-1)
        if self.where not in WHERE:
            raise ValueError(f"gate position must be one of {WHERE}, not {self.where!r}")
        if self.unit not in UNITS:
            raise ValueError(f"gate unit must be one of {UNITS}, not {self.unit!r}")
        if isinstance(self.scale, torch.Tensor) and self.scale.numel() not in (1, self.neurons.numel()):
            raise ValueError("a per-neuron scale needs one value per gated neuron")

    def describe(self) -> str:
        s = "learned tanh(m)" if isinstance(self.scale, torch.Tensor) and self.scale.numel() > 1 else \
            f"x{float(self.scale):.2f}"
        return (f"{self.label or 'gate'}: layer {self.layer}, {self.neurons.numel()} {self.unit} neurons, "
                f"{s}, at {'the subject token' if self.where == 'subject' else 'every position'}")

    def factor(self, size: int, device, dtype) -> torch.Tensor:
        f = torch.ones(size, device=device, dtype=torch.float32)
        f[self.neurons.to(device)] = torch.as_tensor(self.scale, dtype=torch.float32, device=device)
        return f.to(dtype)


@dataclass
class Delta:
    """``ΔW`` for ``down_proj`` of ``layer`` (fp32, shape [hidden, ffn])."""

    layer: int
    delta: torch.Tensor
    label: str = ""
    meta: dict = field(default_factory=dict)

    def describe(self) -> str:
        rows = int((self.delta.abs().sum(1) > 0).sum())
        return (f"{self.label or 'edit'}: layer {self.layer} down_proj, ‖ΔW‖={float(self.delta.norm()):.4g}, "
                f"{rows} rows changed")


def position_selector(position_ids: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    """[B, T] bool: where ``position_ids`` equals each row's target position (None = no target)."""
    if targets is None:
        return None
    t = targets.to(position_ids.device)
    sel = (position_ids[..., None] == t) & (t >= 0) if position_ids.shape[0] != t.shape[0] else None
    if sel is not None:
        # a prefix shared by every row (batch 1): a position counts if it is any row's target
        return sel.any(-1)
    return (position_ids == t[:, None]) & (t[:, None] >= 0)


def _pos_ids(args, kwargs):
    return kwargs.get("position_ids")


def gate_hooks(adapter, gates: list[Gate], subject_pos: torch.Tensor | None) -> list[HookSpec]:
    """Hook specs that apply ``gates``; ``subject_pos`` [B] gives each row's subject position (-1: none)."""
    specs = []
    for g in gates:
        if g.unit == "residual":
            specs.append(adapter.hook(f"blocks.{g.layer}.hook_resid_post", _residual_gate_fn(g, subject_pos),
                                      g.label))
        else:
            box: dict = {}
            spec = adapter.hook(f"blocks.{g.layer}.mlp.hook_post", _ffn_gate_fn(g, subject_pos, box), g.label)
            spec.companions.append(adapter.hook(f"blocks.{g.layer}.hook_resid_pre", _position_grab(box),
                                                "position capture"))
            specs.append(spec)
    return specs


def _scale(h, g: Gate, sel):
    f = g.factor(h.shape[-1], h.device, h.dtype)
    if sel is None:
        return h * f
    sel = sel.to(h.device)[..., None]
    return torch.where(sel, h * f, h)


def _residual_gate_fn(g: Gate, subject_pos):
    def fn(module, args, kwargs, output):
        h = layer_output_tensor(output)
        sel = None
        if g.where == "subject":
            if subject_pos is None:
                return None
            sel = position_selector(_pos_ids(args, kwargs), subject_pos)
        return replace_layer_output(output, _scale(h, g, sel))

    return fn


def _position_grab(box: dict):
    def grab(module, args, kwargs):  # the decoder layer sees position ids; its MLP does not
        box["pos"] = kwargs.get("position_ids")

    return grab


def _ffn_gate_fn(g: Gate, subject_pos, box: dict):
    def fn(module, args, kwargs):
        x = args[0]
        sel = None
        if g.where == "subject":
            if subject_pos is None or box.get("pos") is None:
                return None
            sel = position_selector(box["pos"], subject_pos)
        return (_scale(x, g, sel),) + tuple(args[1:]), kwargs

    return fn


def delta_hooks(adapter, deltas: list[Delta]) -> list[HookSpec]:
    """Hook specs that add each ``ΔW`` to its ``down_proj`` output (fp32 maths, output dtype kept)."""
    specs = []
    for d in deltas:
        specs.append(adapter.hook(f"blocks.{d.layer}.mlp.hook_out", _delta_fn(d.delta), d.label or f"delta L{d.layer}"))
    return specs


def row_delta_hooks(adapter, row_deltas: list) -> list[HookSpec]:
    """Hook specs that add each row's own ΔW: ``row_deltas[i]`` is row i's list of :class:`Delta` (the learned edit
    for some rows, its control or nothing for others), so several edits answer in one batch. Each row gets what
    :func:`delta_hooks` would give it alone. Pass the rows' tags to ``generate`` (``RowTags``), so a prompt start is
    shared only by rows under the same edit: a pass with fewer rows than the batch must be one of those."""
    layers = sorted({d.layer for ds in row_deltas for d in ds})
    specs = []
    for layer in layers:
        by_row = [next((d.delta for d in ds if d.layer == layer), None) for ds in row_deltas]
        specs.append(adapter.hook(f"blocks.{layer}.mlp.hook_out", _row_delta_fn(by_row), f"per-row deltas L{layer}"))
    return specs


def _all_same(deltas: list) -> bool:
    """Do these rows carry the same ΔW (the same tensor, or equal ones: two edits that came out alike)?"""
    first = deltas[0]
    return all(d is first or (d is not None and first is not None and torch.equal(d, first)) for d in deltas)


def _row_delta_fn(by_row: list):
    groups: dict[int, tuple] = {}
    for i, dw in enumerate(by_row):
        if dw is not None:
            groups.setdefault(id(dw), (dw, []))[1].append(i)

    def fn(module, args, kwargs, output):
        x = args[0]
        if x.shape[0] != len(by_row):  # one row standing for rows that share their prompt start
            if not _all_same(by_row):
                raise ValueError("rows under different edits share a prompt start: give generate() one prefix tag "
                                 "per row (RowTags)")
            return None if by_row[0] is None else _delta_fn(by_row[0])(module, args, kwargs, output)
        out = output
        for dw, rows in groups.values():
            idx = torch.tensor(rows, device=x.device)
            d = dw if dw.device == x.device else dw.to(x.device)
            add = F.linear(x.index_select(0, idx).to(d.dtype), d).to(output.dtype)
            out = out.index_add(0, idx.to(out.device), add)
        return out

    return fn


def _delta_fn(delta: torch.Tensor):
    def fn(module, args, kwargs, output):
        x = args[0]
        dw = delta if delta.device == x.device else delta.to(x.device)
        return output + F.linear(x.to(dw.dtype), dw).to(output.dtype)

    return fn


def intervention_hooks(adapter, gates=(), deltas=(), subject_pos=None) -> list[HookSpec]:
    """All hook specs for a set of gates and deltas (the UI's "active interventions")."""
    return gate_hooks(adapter, list(gates), subject_pos) + delta_hooks(adapter, list(deltas))


def subject_positions(batch) -> torch.Tensor:
    """Each row's subject position in unpadded coordinates (-1 where the row has none)."""
    return torch.tensor([s.subject_pos if s.subject_pos is not None else -1 for s in batch.seqs],
                        dtype=torch.long)
