"""Token-mean NLL of each row's target tokens, computing logits only where they are scored."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def answer_nll(adapter, hidden: torch.Tensor, batch, tail_start: torch.Tensor | None = None) -> torch.Tensor:
    """[B] mean token NLL of ``seq.targets`` for every row of ``batch``.

    ``hidden`` is the final-norm output for ``batch``; with ``tail_start`` the batch
    holds only each row's tail starting at absolute position ``tail_start[i]``.
    """
    rows, cols, tgts = [], [], []
    for i, s in enumerate(batch.seqs):
        pos = s.target_positions
        if tail_start is not None:
            pos = pos - int(tail_start[i])
        else:
            pos = pos + int(batch.offsets[i])
        rows.append(torch.full_like(pos, i))
        cols.append(pos)
        tgts.append(s.targets)
    rows, cols, tgts = torch.cat(rows), torch.cat(cols), torch.cat(tgts)
    if (cols < 0).any():
        raise ValueError("a target position lies before the computed tail")
    h = hidden[rows.to(hidden.device), cols.to(hidden.device)]
    logits = adapter.logits(h)
    logp = F.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)  # ≥ fp32
    tok = -logp.gather(-1, tgts.to(logp.device)[:, None])[:, 0].cpu()
    B = len(batch.seqs)
    sums = torch.zeros(B, dtype=tok.dtype).index_add(0, rows, tok)
    counts = torch.zeros(B, dtype=tok.dtype).index_add(0, rows, torch.ones_like(tok))
    return sums / counts.clamp(min=1)
