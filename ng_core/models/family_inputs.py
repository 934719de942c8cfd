"""What a family's forward needs besides embeddings, looked up per row from token indices.

A batch's ``position_ids`` are token indices of each row's unpadded sequence (a cached prefix's tail continues
them), so everything position-like is a lookup in the row's own :class:`~ng_core.models.adapter.Sequence`:
Qwen's 3-D M-RoPE positions (computed once per sequence by the model's own ``get_rope_index``), the image
tokens (Gemma 3's token types) and Qwen3-VL's DeepStack features. Prefix caches, left or right padding and
subject positions then work the same for every family.
"""
from __future__ import annotations

import torch


def flat(feats) -> torch.Tensor:
    """Image features as one [N, d] tensor (a model may give one tensor per image)."""
    if isinstance(feats, (list, tuple)):
        feats = torch.cat([f.reshape(-1, f.shape[-1]) for f in feats])
    return feats.reshape(-1, feats.shape[-1])


def set_rope(base_model, seq, image_grid_thw) -> None:
    """``seq.rope_positions`` [3, T] and ``seq.rope_delta`` from the model's own ``get_rope_index``."""
    ids = seq.input_ids[None]
    if image_grid_thw is None:  # text only: the model's own text positions are the token indices on all axes
        seq.rope_positions, seq.rope_delta = torch.arange(len(seq))[None].expand(3, -1), 0
        return
    mm = torch.zeros_like(ids, dtype=torch.int)
    mm[0, seq.image_positions] = 1
    pos, delta = base_model.get_rope_index(ids, mm_token_type_ids=mm, image_grid_thw=image_grid_thw)
    seq.rope_positions, seq.rope_delta = pos[:, 0].cpu(), int(delta.reshape(-1)[0])


def mrope_positions(batch) -> torch.Tensor:
    """[4, B, T]: the token indices (what the decoder layers and the hooks see), then the 3-D positions; past a
    sequence's end (generated tokens) the text positions go on, shifted by the sequence's ``rope_delta``."""
    pid = batch.position_ids
    out = pid.new_empty((3,) + tuple(pid.shape))
    for i, s in enumerate(batch.seqs):
        p, table = pid[i], s.rope_positions.to(pid.device)
        n = table.shape[1]
        out[:, i] = torch.where(p[None] < n, table[:, p.clamp(max=n - 1)], (p + s.rope_delta)[None])
    return torch.cat([pid[None], out], 0)


def image_token_mask(batch) -> torch.Tensor:
    """[B, T] bool: True at the batch's image tokens (never at padding)."""
    pid = batch.position_ids
    real = batch.attention_mask[:, -pid.shape[1]:].bool()  # the mask may span a cached prefix too
    out = torch.zeros(pid.shape, dtype=torch.bool, device=pid.device)
    for i, s in enumerate(batch.seqs):
        if len(s.image_positions):
            out[i] = torch.isin(pid[i], s.image_positions.to(pid.device)) & real[i]
    return out


def deepstack_inputs(batch):
    """(visual_pos_masks [B, T], [k x [n, d]]) for the batch's image tokens, or (None, None) when it has none."""
    mask = image_token_mask(batch)
    if not bool(mask.any()):
        return None, None
    rows = []
    for i, s in enumerate(batch.seqs):
        if bool(mask[i].any()):
            if s.deepstack is None:
                raise ValueError("this sequence's image was not embedded with its DeepStack features")
            idx = torch.searchsorted(s.image_positions.to(mask.device), batch.position_ids[i][mask[i]])
            rows.append(s.deepstack[idx.to(s.deepstack.device)])
    extra = torch.cat(rows)  # [n, k, d], in the order the decoder reads the mask (row by row, left to right)
    return mask, [extra[:, j] for j in range(extra.shape[1])]
