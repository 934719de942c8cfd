"""Decoding helpers of the LLaVA adapter: draft-verified greedy decoding, shared prefixes, sampling."""
from __future__ import annotations

import torch

from ng_core.models.adapter import Batch


def greedy_with_draft(self, logits, cache, attn, pos, batch, seqs, draft, max_new_tokens, suppress,
                       on_token) -> list[int]:
    """Greedy decoding of one row that verifies runs of ``draft`` tokens in one forward pass each.

    ``self`` is the :class:`~ng_core.models.llava.LlavaAdapter`.

    After the model picks token ``t`` (the draft's next token too), ``t`` and the draft's
    continuation are run together; the draft tokens the model would have picked itself are kept,
    the cache is cut back to them, and decoding goes on from the model's own next-token logits.
    At the first disagreement the draft is dropped and decoding is token by token.
    """
    toks: list[int] = []
    while len(toks) < max_new_tokens:
        logits[:, suppress] = -float("inf")
        t = int(logits[0].argmax())
        if t in self.eos_ids:
            break
        toks.append(t)
        if on_token is not None:
            on_token([self.tokenizer.decode(toks, skip_special_tokens=True)])
        if len(toks) >= max_new_tokens:
            break
        j = len(toks)
        if draft is not None and len(draft) >= j and draft[j - 1] == t:
            block = [t] + draft[j: j + max_new_tokens - j]
        else:
            draft = None
            block = [t]
        L = len(block)
        ids = torch.tensor([block], dtype=torch.long, device=self.input_device)
        attn = torch.cat([attn, torch.ones(1, L, dtype=attn.dtype, device=attn.device)], dim=1)
        positions = pos[:, None] + 1 + torch.arange(L, device=pos.device)[None]
        step = Batch(self.lm.embed_tokens(ids), attn, positions, batch.offsets, seqs)
        hidden, cache = self.forward(step, cache=cache, use_cache=True)
        lg = self.logits(hidden[0]).float()  # lg[k]: the next token after block[k]
        lg[:, suppress] = -float("inf")
        accepted = 0
        while accepted < L - 1 and len(toks) < max_new_tokens:
            if int(lg[accepted].argmax()) != block[accepted + 1]:
                break
            accepted += 1
            toks.append(block[accepted])
        if accepted < L - 1:  # cut the unverified draft tokens out of the cache
            cache.crop(-(L - 1 - accepted))
            attn = attn[:, : attn.shape[1] - (L - 1 - accepted)]
            draft = None
        if accepted and on_token is not None:
            on_token([self.tokenizer.decode(toks, skip_special_tokens=True)])
        pos = pos + 1 + accepted
        logits = lg[accepted][None].clone()
    return toks


def shared_prefix_len(seqs, feats) -> int:
    """Length of the prompt start that every row shares exactly (image block and the lines read from it), else 0.

    Each row's split point is its own: the start of its question (``Sequence.question_pos``), or the end of
    its image block when that comes later. Rows share it when they have the same image features, the same
    split point and identical tokens before it, so a row gets the same computation alone or in a batch of
    rows about its image; the evaluation batches rows one image at a time.
    """
    if any(f is None for f in feats) or any(len(s.image_positions) == 0 for s in seqs):
        return 0

    def split(s):
        return max(int(s.image_positions[-1]) + 1, int(s.question_pos))

    P = split(seqs[0])
    f0, ids0 = feats[0], seqs[0].input_ids[:P]
    for s, f in zip(seqs[1:], feats[1:]):
        if split(s) != P or not torch.equal(s.input_ids[:P], ids0):
            return 0
        if f is not f0 and not torch.equal(f, f0):
            return 0
    if any(len(s) <= P for s in seqs):
        return 0
    if any(s.subject_pos is not None and s.subject_pos < P for s in seqs):
        return 0  # a subject-position intervention would act inside the shared part
    return P


def sample_next(logits, temperature, top_p, gen):
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    sp, si = probs.sort(dim=-1, descending=True)
    keep = sp.cumsum(-1) - sp < top_p
    sp = sp * keep
    sp = sp / sp.sum(-1, keepdim=True)
    pick = torch.multinomial(sp, 1, generator=gen)
    return si.gather(-1, pick)[:, 0]
