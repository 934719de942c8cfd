"""Key/value caches and layer replay: the one module that knows how a transformers cache is laid out.

The method layer keeps prompt prefixes in a cache, copies an image's part to its rows, snapshots and
restores it between optimisation steps. It does all of that through the adapter (:meth:`new_cache`,
:meth:`snapshot`, ...), which calls these functions; nothing else reads ``cache.layers``.

:func:`captured_layer_kwargs` runs the decoder's own forward with every decoder layer swapped for a
pass-through that records what the model hands it (masks per layer type, position embeddings, position
ids, token types), so a replay of layers ``start..`` sees exactly what ``forward()`` would give them, for
any family: Llama's causal mask, Gemma's sliding windows, Qwen's 3-D rotary positions.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache


def new_cache(text_config):
    return DynamicCache(config=text_config)


def snapshot(cache) -> list:
    """Each layer's (keys, values, length) as held now (the tensors themselves, not copies)."""
    return [(layer.keys, layer.values, getattr(layer, "cumulative_length", None)) for layer in cache.layers]


def restore(cache, snap: list, clone: bool = False) -> None:
    """Put a :func:`snapshot` back (dropping what was added since, and its autograd history)."""
    for layer, (k, v, n) in zip(cache.layers, snap):
        if k is None or not isinstance(k, torch.Tensor):
            continue
        if not getattr(layer, "is_initialized", True):
            layer.lazy_initialization(k, v)
        layer.keys, layer.values = (k.clone(), v.clone()) if clone else (k, v)
        if n is not None:
            layer.cumulative_length = n


def from_snapshot(text_config, snap: list):
    """A fresh cache holding copies of ``snap``."""
    cache = new_cache(text_config)
    restore(cache, snap, clone=True)
    return cache


def select_rows(cache, idx: torch.Tensor) -> None:
    """Rows ``idx`` of every layer (an image's part copied to each of its rows)."""
    for layer in cache.layers:
        if isinstance(getattr(layer, "keys", None), torch.Tensor) and layer.keys.numel():
            layer.keys = layer.keys.index_select(0, idx.to(layer.keys.device))
            layer.values = layer.values.index_select(0, idx.to(layer.values.device))


def expand_rows(cache, n: int, start: int = 0) -> None:
    """One row's keys/values seen by ``n`` rows (a view: the autograd history is kept), layers ``start..``."""
    for layer in cache.layers[start:]:
        if isinstance(getattr(layer, "keys", None), torch.Tensor) and layer.keys.numel():
            layer.keys = layer.keys.expand(n, -1, -1, -1)
            layer.values = layer.values.expand(n, -1, -1, -1)


def seq_length(cache, layer: int = 0) -> int:
    return int(cache.layers[layer].get_seq_length()) if cache is not None else 0


def _shadow(text_config, cache, start: int, rows: int):
    """A cache that reports, in every layer, the length layer ``start`` of ``cache`` holds (no memory).

    The decoder sizes its masks from the cache's first layers; a cache filled from ``start`` only holds
    nothing there. The shadow gives the mask builder the right lengths and is never attended to.
    """
    past = seq_length(cache, start)
    shadow = new_cache(text_config)
    if past:
        ref = cache.layers[start].keys
        z = ref.new_zeros(()).expand(rows, 1, past, 1)
        for layer in shadow.layers:
            layer.lazy_initialization(z, z)
            layer.keys, layer.values = z, z
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length = past
    return shadow


class _PassThrough(nn.Module):
    """Stands in for decoder layer ``index`` during a capture: records its kwargs, returns its input."""

    def __init__(self, index: int, layer: nn.Module, box: dict):
        super().__init__()
        self.index = index
        self.box = box
        for attr in ("attention_type", "is_sliding", "layer_type"):
            if hasattr(layer, attr):
                setattr(self, attr, getattr(layer, attr))

    def forward(self, hidden_states, *args, **kwargs):
        self.box[self.index] = (args, kwargs)
        return hidden_states


def captured_layer_kwargs(lm: nn.Module, layers_attr: str, run, cache, start: int, text_config, rows: int) -> dict:
    """{layer index: (args, kwargs)} the decoder gives its layers ``start..`` when ``run(cache)`` runs it.

    ``run`` calls the model's forward with a given cache (a shadow of ``cache`` sized from layer ``start``);
    the decoder layers are pass-throughs meanwhile (restored after, also on error), so nothing but the mask and
    position code runs.
    """
    layers = getattr(lm, layers_attr)
    box: dict = {}
    stand_in = nn.ModuleList([_PassThrough(i, layer, box) for i, layer in enumerate(layers)])
    shadow = _shadow(text_config, cache, start, rows) if cache is not None else None
    setattr(lm, layers_attr, stand_in)
    try:
        with torch.no_grad():
            run(shadow)
    finally:
        setattr(lm, layers_attr, layers)
    return {i: box[i] for i in range(start, len(layers)) if i in box}


def replay(layers, captured: dict, hidden: torch.Tensor, start: int, stop: int, cache, after=None,
           keep_inputs: list | None = None) -> torch.Tensor:
    """Layers ``start..stop-1`` on ``hidden`` with the captured kwargs and the real ``cache``; ``after(i, h)``,
    when given, is what the decoder itself does between layer ``i`` and the next (Qwen3-VL's DeepStack);
    ``keep_inputs`` receives the residual stream entering each layer."""
    h = hidden
    for i in range(start, stop):
        if keep_inputs is not None:
            keep_inputs.append(h)
        args, kwargs = captured[i]
        kwargs = dict(kwargs)
        if "cache" in kwargs or cache is not None:
            kwargs["cache"] = cache
        if "past_key_values" in kwargs:
            kwargs["past_key_values"] = cache
        kwargs["use_cache"] = cache is not None
        h = layers[i](h, *args, **kwargs)
        h = h[0] if isinstance(h, tuple) else h
        if after is not None:
            h = after(i, h)
    return h
