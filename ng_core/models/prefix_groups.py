"""One prompt start per image for a batch of answers about several images.

Why: rows about one image share the image block and the lines read from it (about 200 tokens on the default model)
and differ only in their question (about 20). A batch over several cards (the guided demo's held-out set, an
evaluation over several images) used to run every row's whole prompt. Here each image's prompt start runs once, or
comes from a :class:`~ng_core.models.decoding.PrefixMemo` (an unedited start reused by an edit from the edited
layer up), its keys/values are left-padded to the longest start and copied to each of its rows, and only the
questions run as a batch. Positions stay each row's own token indices, so every family's position code applies.

Not where a sliding window could bind: the window counts cache slots, padding included, so a row would see fewer
real tokens than alone (:meth:`~ng_core.models.hf_adapter.HFVLMAdapter.check_window`); :func:`padded_length` says
how many slots a grouped batch would take.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ng_core.models.decoding import prefix_kv, prompt_start_len


def prefix_groups(seqs, feats, keys=None) -> list[tuple[int, list[int]]] | None:
    """``[(start length, row indices)]``: rows grouped by identical prompt start (image features, tokens before the
    question) and equal ``keys`` (each row's prefix tag: rows under different edits never share a start), in
    first-seen order; None when some row has no image, nothing after its start, or its subject inside its start (a
    subject-position intervention must see it in the row's own part)."""
    keys = keys if keys is not None else [None] * len(seqs)
    groups: list[tuple[int, list[int]]] = []
    for i, (s, f) in enumerate(zip(seqs, feats)):
        if f is None or len(s.image_positions) == 0:
            return None
        P = prompt_start_len(s)
        if len(s) <= P or (s.subject_pos is not None and s.subject_pos < P):
            return None
        for Pg, rows in groups:
            j = rows[0]
            if Pg == P and keys[j] == keys[i] and torch.equal(seqs[j].input_ids[:P], s.input_ids[:P]) \
                    and (feats[j] is f or torch.equal(feats[j], f)):
                rows.append(i)
                break
        else:
            groups.append((P, [i]))
    return groups


def padded_length(seqs, groups, new_tokens: int) -> int:
    """The cache slots a grouped batch reaches: the longest start, the longest question, the new tokens."""
    starts = {i: P for P, rows in groups for i in rows}
    return max(starts.values()) + max(len(s) - starts[i] for i, s in enumerate(seqs)) + int(new_tokens)


def cache_window(adapter) -> int | None:
    """The smallest window among the cache's sliding-window layers (None: no layer slides)."""
    return adapter.sliding_window


def grouped_prefix_kv(adapter, seqs, feats, groups, hooks_for=None, memo=None, tags=None):
    """(cache, mask [B, Pmax], starts [B]): each group's prompt start run once (or reused from ``memo`` under its
    rows' tag, ``tags[i]``), under the hooks its own rows would attach (``hooks_for`` of the group's batch, whose
    ``rows`` name them), left-padded to the longest start and copied to the group's rows. ``starts[i]`` is row i's
    start length: its question's tokens continue from there."""
    snaps, lengths = [], []
    for P, rows in groups:
        specs = []
        if hooks_for is not None:
            part = adapter.collate([seqs[r] for r in rows], [feats[r] for r in rows], padding="left")
            part.rows = list(rows)
            specs = hooks_for(part)
        tag = tags[rows[0]] if tags is not None else None
        with torch.no_grad(), adapter.hooked(specs):
            cache, _ = prefix_kv(adapter, seqs[rows[0]], feats[rows[0]], P, 1, memo, tag)
        snaps.append(adapter.cache_snapshot(cache))
        lengths.append(P)
    top = max(lengths)
    merged = []
    for parts in zip(*snaps):  # one decoder layer: (keys, values, length) of every group
        ks = [F.pad(k, (0, 0, top - P, 0)) for (k, _, _), P in zip(parts, lengths)]
        vs = [F.pad(v, (0, 0, top - P, 0)) for (_, v, _), P in zip(parts, lengths)]
        slides = any(n is not None for _, _, n in parts)  # a sliding-window layer counts the slots it holds
        merged.append((torch.cat(ks, 0), torch.cat(vs, 0), top if slides else None))
    cache = adapter.new_cache()
    adapter.cache_restore(cache, merged)
    B = len(seqs)
    owner = torch.empty(B, dtype=torch.long)
    starts = torch.empty(B, dtype=torch.long)
    for g, (P, rows) in enumerate(groups):
        owner[rows] = g
        starts[rows] = P
    adapter.cache_select_rows(cache, owner)
    dev = adapter.input_device
    mask = (torch.arange(top)[None] >= (top - starts)[:, None]).long().to(dev)
    return cache, mask, starts.to(dev)


__all__ = ["cache_window", "grouped_prefix_kv", "padded_length", "prefix_groups"]
