"""Answers: greedy or seeded sampling, rows decoded together with a key/value cache, draft-verified decoding."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ng_core.models.activity import Yielded
from ng_core.models.adapter import Batch
from ng_core.models.memory import answer_rows, chunks
from ng_core.models.decoding import (PrefixMemo, RowTags, greedy_with_draft, prefix_kv, sample_next,
                                     shared_prefix_len)
from ng_core.models.prefix_groups import cache_window, grouped_prefix_kv, padded_length, prefix_groups
from ng_core.models.prompt_guard import check_max_new_tokens


@dataclass
class Generation:
    """One generated answer."""

    text: str
    token_ids: list
    prompt: str


def _rows_from(hooks_for, start: int):
    """``hooks_for`` for a part of a call's items that begins at item ``start``: its batches name the call's rows."""
    if hooks_for is None or not start:
        return hooks_for

    def shifted(batch):
        batch.rows = [start + i for i in batch.rows]
        return hooks_for(batch)

    return shifted


class GenerationMixin:
    """:meth:`generate` for :class:`ng_core.models.hf_adapter.HFVLMAdapter`."""

    # ------------------------------------------------------------------ generation
    def generate(self, items: list, *, max_new_tokens: int = 32, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 0.9, repetition_penalty: float = 1.0,
                 seed: int | None = None, hooks_for=None, on_token=None, draft: list[int] | None = None,
                 prefix_memo: PrefixMemo | None = None, prefix_tag=None) -> list[Generation]:
        """Greedy (or seeded sampling) answers for ``items`` = [(features|None, prompt, subject|None[, reading])].

        Rows are left-padded and decoded together with a KV cache. ``hooks_for(batch)``
        returns the hook specs of active interventions (they see position ids, so a
        subject-position gate acts on the prompt pass only). ``on_token(texts)`` streams.

        ``draft`` (one greedy row only): token ids the answer probably starts with, e.g. the
        answer to the same input under slightly different gates. The model checks a whole
        run of draft tokens in one pass and keeps the ones it would have generated itself
        (greedy speculative decoding with the draft as the guess), so the result is the
        model's own greedy answer; only the number of passes changes. ``prefix_memo`` reuses the shared
        prompt start's keys/values computed before under the same ``prefix_tag`` (:class:`PrefixMemo`); a
        :class:`RowTags` gives each row its own tag (rows under different edits, e.g. ``hooks_for`` adding the
        learned edit to some rows and its control to others: their prompt starts are never shared).
        """
        if not items:
            return []
        seqs, feats = [], []
        for it in items:
            f, prompt, subject, reading = (tuple(it) + (None, None))[:4]
            seqs.append(self.build(prompt, subject=subject, has_image=f is not None, reading=reading))
            feats.append(f)
        max_new_tokens = check_max_new_tokens(max_new_tokens, max(len(q) for q in seqs), self.context_length)
        fit = answer_rows(self, seqs, max_new_tokens) if draft is None else None
        if fit is not None and fit < len(items):  # the device's free memory binds: answer in smaller batches
            kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p,
                      repetition_penalty=repetition_penalty, on_token=on_token, prefix_memo=prefix_memo)
            per_row = isinstance(prefix_tag, RowTags)
            return [g for k, r in enumerate(chunks(len(items), fit))
                    for g in self.generate(items[r.start:r.stop], seed=None if seed is None else seed + k,
                                           hooks_for=_rows_from(hooks_for, r.start),
                                           prefix_tag=RowTags(prefix_tag[r.start:r.stop]) if per_row else prefix_tag,
                                           **kw)]
        batch = self.collate(seqs, feats, padding="left")
        batch.rows = list(range(len(seqs)))
        gen = torch.Generator().manual_seed(int(seed)) if do_sample else None
        B = batch.size
        new_tokens = [[] for _ in range(B)]
        done = torch.zeros(B, dtype=torch.bool)
        suppress = [self.image_token_id] + list(self.marker_ids)
        specs = hooks_for(batch) if hooks_for else []
        starts = self._prompt_starts(seqs, feats, hooks_for, prefix_memo, prefix_tag, max_new_tokens, draft)
        with torch.no_grad(), self.hooked(specs):
            hidden, cache, attn, pos = self._prompt_pass(batch, seqs, feats, starts)
            logits = self.logits(hidden[:, -1]).float()
            if draft is not None and B == 1 and not do_sample and repetition_penalty == 1.0:
                toks = greedy_with_draft(self, logits, cache, attn, pos, batch, seqs, list(draft), max_new_tokens,
                                               suppress, on_token)
                return [Generation(self.tokenizer.decode(toks, skip_special_tokens=True).strip(), toks, items[0][1])]
            for _ in range(max_new_tokens):
                if self.activity.wanted():  # background work gives the model up to a request (done again later)
                    raise Yielded("a request wants the model")
                logits[:, suppress] = -float("inf")
                if repetition_penalty != 1.0:
                    for i in range(B):
                        prev = torch.tensor(seqs[i].input_ids.tolist() + new_tokens[i], dtype=torch.long)
                        sc = logits[i, prev]
                        logits[i, prev] = torch.where(sc > 0, sc / repetition_penalty, sc * repetition_penalty)
                if do_sample:
                    nxt = sample_next(logits, temperature, top_p, gen)
                else:
                    nxt = logits.argmax(-1)
                nxt = nxt.cpu()
                for i in range(B):
                    if not done[i]:
                        t = int(nxt[i])
                        if t in self.eos_ids:
                            done[i] = True
                        else:
                            new_tokens[i].append(t)
                if on_token is not None:
                    on_token([self.tokenizer.decode(t, skip_special_tokens=True) for t in new_tokens])
                if bool(done.all()):
                    break
                nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
                pos = pos + 1
                attn = torch.cat([attn, (~done).long()[:, None].to(attn.device)], dim=1)
                step = Batch(self.embed_ids(nxt[:, None]), attn, pos[:, None],
                             batch.offsets, seqs)
                hidden, cache = self.forward(step, cache=cache, use_cache=True)
                logits = self.logits(hidden[:, -1]).float()
        return [Generation(self.tokenizer.decode(t, skip_special_tokens=True).strip(), t, it[1])
                for t, it in zip(new_tokens, items)]

    def _prompt_starts(self, seqs, feats, hooks_for, memo, prefix_tag, new_tokens: int, draft):
        """How the prompt pass begins: ``None`` (every row whole), ``("shared", P, memo, tag)`` (one start every row
        shares, run in the pass) or ``("grouped", (cache, mask, starts))`` (each image's start run here, under its
        rows' own hooks, before the pass attaches the batch's)."""
        tags = list(prefix_tag) if isinstance(prefix_tag, RowTags) else None
        one_tag = tags[0] if tags is not None else prefix_tag
        P = shared_prefix_len(seqs, feats) if tags is None or len(set(tags)) == 1 else 0
        if P:
            return "shared", P, memo, one_tag
        groups = self._prefix_groups(seqs, feats, memo, new_tokens, tags) if draft is None else None
        if not groups:
            return None
        return "grouped", grouped_prefix_kv(self, seqs, feats, groups, hooks_for, memo, tags or [one_tag] * len(seqs))

    def _prompt_pass(self, batch, seqs, feats, starts):
        """(hidden, cache, attention mask, last positions) after the prompts, from their starts (hooks attached)."""
        B = batch.size
        if starts is None:
            hidden, cache = self.forward(batch, use_cache=True)
            return hidden, cache, batch.attention_mask, batch.position_ids[:, -1]
        if starts[0] == "shared":
            # The image, the lines read from it and the template before the question are the same for every
            # row: their keys/values are computed once (or reused) and expanded over the batch.
            _, P, memo, tag = starts
            cache, pre_mask = prefix_kv(self, seqs[0], feats[0], P, B, memo, tag)
            at = torch.full((B,), P, dtype=torch.long, device=pre_mask.device)
        else:  # rows about several images: each image's start once, its keys/values copied to its rows
            cache, pre_mask, at = starts[1]
        tail = self.collate_embeds([self.embed(s, f)[int(st):] for s, f, st in zip(seqs, feats, at)], seqs,
                                   padding="left")
        tail.position_ids = tail.position_ids + at[:, None].to(tail.position_ids.device)
        tail.attention_mask = torch.cat([pre_mask, tail.attention_mask], dim=1)
        hidden, cache = self.forward(tail, cache=cache, use_cache=True)
        return hidden, cache, tail.attention_mask, tail.position_ids[:, -1]

    def _prefix_groups(self, seqs, feats, memo, new_tokens: int, tags=None) -> list | None:
        """The rows' prompt-start groups when running each start once pays (several rows share one, or a memo keeps
        them for the next batch) and no sliding window could bind (see :mod:`ng_core.models.prefix_groups`)."""
        if len(seqs) < 2:
            return None
        groups = prefix_groups(seqs, feats, tags)
        if groups is None or (len(groups) == len(seqs) and memo is None):
            return None
        window = cache_window(self)
        if window is not None and padded_length(seqs, groups, new_tokens) >= window - 1:
            return None
        return groups
