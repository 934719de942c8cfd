"""Scoped forward hooks: registered for one block of work, removed on exit even when it raises.

Every hook the core registers goes through :func:`scoped_hooks`, which also keeps a
process-wide count of live hooks so tests (and the UI's "active interventions" panel)
can prove that nothing is left behind.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

_live = 0
_live_lock = threading.Lock()


def live_hook_count() -> int:
    """Hooks registered by the core and not yet removed (0 when no work is running)."""
    return _live


def module_hook_count(model: nn.Module) -> int:
    """All forward (pre-)hooks currently attached anywhere in ``model``, ours or not."""
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks)
    return n


@dataclass
class HookSpec:
    """One hook to attach: ``kind`` is ``"output"`` (forward hook) or ``"pre"`` (forward pre-hook).

    Output hooks are called as ``fn(module, args, kwargs, output) -> output | None`` and
    pre-hooks as ``fn(module, args, kwargs) -> (args, kwargs) | None`` (always with kwargs,
    so position ids are visible to position-aware interventions).

    ``point`` is the stable name of the place (``blocks.15.hook_resid_post``, see
    :meth:`ng_core.models.adapter.ModelAdapter.hook`); ``companions`` are hooks this one needs
    attached with it (an FFN gate reads the position ids its decoder layer sees), attached first.
    """

    module: nn.Module
    fn: Callable
    kind: str = "output"
    name: str = ""
    point: str = ""
    companions: list = field(default_factory=list)


def flatten(specs: list[HookSpec]) -> list[HookSpec]:
    """``specs`` with each one's companions placed before it."""
    out = []
    for s in specs:
        out.extend(flatten(s.companions))
        out.append(s)
    return out


class StopForward(Exception):
    """Raised by a capture hook to skip the rest of a forward pass (baukit's trick)."""


@contextlib.contextmanager
def scoped_hooks(specs: list[HookSpec]) -> Iterator[None]:
    """Attach ``specs`` for the duration of the block; always detach them."""
    global _live
    handles = []
    try:
        for s in flatten(specs):
            if s.kind == "output":
                h = s.module.register_forward_hook(s.fn, with_kwargs=True)
            elif s.kind == "pre":
                h = s.module.register_forward_pre_hook(s.fn, with_kwargs=True)
            else:  # pragma: no cover - programming error
                raise ValueError(f"unknown hook kind {s.kind!r}")
            handles.append(h)
            with _live_lock:
                _live += 1
        yield
    finally:
        for h in handles:
            h.remove()
            with _live_lock:
                _live -= 1


def layer_output_tensor(output):
    """Decoder layers return a tensor in transformers 5.x and a tuple in older versions."""
    return output[0] if isinstance(output, tuple) else output


def replace_layer_output(output, new: torch.Tensor):
    if isinstance(output, tuple):
        return (new,) + tuple(output[1:])
    return new


def execution_device(module) -> torch.device:
    """Where ``module``'s forward runs: its weight's device, or, for a weight accelerate offloads (held on the meta
    device, loaded from the CPU or disk for each pass), the hook's execution device."""
    hook = getattr(module, "_hf_hook", None)
    if module.weight.device.type == "meta" and getattr(hook, "execution_device", None) is not None:
        return torch.device(hook.execution_device)
    return module.weight.device


def stored_weight(module, name: str = "weight") -> torch.Tensor:
    """``module``'s parameter ``name``, also where accelerate offloads it (then read from its CPU or disk copy)."""
    hook, p = getattr(module, "_hf_hook", None), getattr(module, name)
    if p.device.type == "meta" and getattr(hook, "weights_map", None) is not None:
        return hook.weights_map[name]
    return p
