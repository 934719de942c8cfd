"""Decoding helpers of the adapter: draft-verified greedy decoding, shared prefixes, sampling."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable

import torch

from ng_core.models.adapter import Batch


def greedy_with_draft(self, logits, cache, attn, pos, batch, seqs, draft, max_new_tokens, suppress,
                       on_token) -> list[int]:
    """Greedy decoding of one row that verifies runs of ``draft`` tokens in one forward pass each.

    ``self`` is the :class:`~ng_core.models.hf_adapter.HFVLMAdapter`.

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
        step = Batch(self.embed_ids(ids), attn, positions, batch.offsets, seqs)
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


def prompt_start_len(seq) -> int:
    """Where a row's own part begins: the start of its question, or the end of its image block when later."""
    return max(int(seq.image_positions[-1]) + 1, int(seq.question_pos))


def shared_prefix_len(seqs, feats) -> int:
    """Length of the prompt start that every row shares exactly (image block and the lines read from it), else 0.

    Each row's split point is its own: the start of its question (``Sequence.question_pos``), or the end of
    its image block when that comes later. Rows share it when they have the same image features, the same
    split point and identical tokens before it, so a row gets the same computation alone or in a batch of
    rows about its image; the evaluation batches rows one image at a time.
    """
    if any(f is None for f in feats) or any(len(s.image_positions) == 0 for s in seqs):
        return 0
    split = prompt_start_len
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


def common_prefix_len(seqs) -> int:
    """How many tokens every row of ``seqs`` starts with, never past a row's subject token or its answer.

    Rows about one image share the template, the image block and the lines read from it; a subject-position
    intervention must see the subject in a row of its own, and an answer's positions are scored per row.
    """
    ids = [s.input_ids for s in seqs]
    n = min(len(x) for x in ids)
    same = torch.stack([x[:n] == ids[0][:n] for x in ids]).all(0)
    P = int(n if bool(same.all()) else int((~same).nonzero()[0, 0]))
    for s in seqs:
        if s.subject_pos is not None:
            P = min(P, int(s.subject_pos))
        if len(s.targets):
            P = min(P, int(s.target_positions.min()))
    return P


class LayeredTag(tuple):
    """A :class:`PrefixMemo` tag that says at which layer each intervention acting inside the prefix sits:
    sorted ``(layer, signature)`` pairs (a gate at every position, one per edited layer).

    An intervention at layer ``l`` (on its output or inside its MLP) cannot change what enters layers ``0..l``,
    nor their keys/values. So a prefix under this tag can start from a stored prefix of the same input whose
    interventions differ first at layer ``m``: its keys/values of layers ``< m`` and the residual stream
    entering layer ``m`` are reused, and only layers ``m..`` run again (:meth:`PrefixMemo.lookup`).
    """

    def __new__(cls, parts=()):
        return super().__new__(cls, sorted(((int(l), sig) for l, sig in parts), key=lambda p: (p[0], repr(p[1]))))

    def first_difference(self, other: "LayeredTag") -> int | None:
        """The lowest layer whose interventions differ between the two tags (None: the same tag)."""
        diff = set(self) ^ set(other)
        return min(l for l, _ in diff) if diff else None


class RowTags(tuple):
    """One :class:`PrefixMemo` tag per row of a batch whose rows are under different interventions (an edit on some
    rows, another edit or none on others): rows share a prompt start only under the same tag."""


class _Entry:
    __slots__ = ("snap", "inputs", "tag")

    def __init__(self, snap, inputs, tag):
        self.snap, self.inputs, self.tag = snap, inputs, tag


class PrefixMemo:
    """Keys/values of prompt starts computed before, kept for the answers that come next (gate toggles).

    A gate at the subject token cannot change anything before the question (attention is causal), so
    between toggles the image block and the read lines need not be run again. An entry is keyed by the
    prefix's input embeddings (image features included) and by ``tag``, which the caller sets to name
    every intervention that does act inside the prefix (edits, gates at every position): same key, same
    keys/values.

    With a :class:`LayeredTag` an entry also keeps the residual stream entering each layer, so a new gate at
    every position of layer ``l`` reruns the prefix from layer ``l`` only, starting from an entry of the same
    input that agrees below ``l`` (the ungated prefix, or the previous toggle's). An entry holds ~20 MB on the
    default model (keys/values and layer inputs of ~200 tokens), ~600 MB on a 7B with 576 image tokens: keep
    ``size`` small. Thread-safe; the least recently used entry goes first. ``hits`` counts prefixes reused
    whole; ``misses`` those run, ``partial`` those of them run only from a layer up.
    """

    def __init__(self, size: int = 4):
        self.size = int(size)
        self.hits = self.misses = self.partial = 0
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(tag: Hashable, prefix_embeds: torch.Tensor) -> tuple:
        t = prefix_embeds.detach().to("cpu").contiguous()
        return tag, str(t.dtype), tuple(t.shape), hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()

    def lookup(self, key) -> tuple:
        """``(entry, start)``: the stored entry to build the prefix under ``key`` from, and the first layer that
        must run again (0 with no entry; None when the entry is the prefix itself). Counts a hit or a miss."""
        tag, rest = key[0], key[1:]
        with self._lock:
            e = self._d.get(key)
            if e is not None:
                self._d.move_to_end(key)
                self.hits += 1
                return e, None
            self.misses += 1
            best, start = None, 0
            if isinstance(tag, LayeredTag):
                for k, cand in self._d.items():
                    if k[1:] != rest or cand.inputs is None or not isinstance(cand.tag, LayeredTag):
                        continue
                    m = tag.first_difference(cand.tag)
                    if m is not None and m > start:
                        best, start = (k, cand), m
            if best is None:
                return None, 0
            self._d.move_to_end(best[0])
            self.partial += 1
            return best[1], start

    def put(self, key, snap: list, inputs=None) -> None:
        """Keep ``snap`` (an adapter's ``cache_snapshot``, copied here) under ``key``, with ``inputs`` (the residual
        stream entering each layer) under a :class:`LayeredTag`."""
        snap = [tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in layer) for layer in snap]
        with self._lock:
            self._d[key] = _Entry(snap, inputs, key[0])
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


def prefix_kv(self, seq, feats, P: int, B: int, memo: PrefixMemo | None = None, tag: Hashable = None):
    """(cache, mask): keys/values of the first ``P`` tokens of ``seq``, run once and expanded over ``B`` rows.

    ``self`` is the :class:`~ng_core.models.hf_adapter.HFVLMAdapter`, its hooks already attached. With ``memo``,
    a prefix computed before under the same ``tag`` is reused instead of run; under a :class:`LayeredTag`, one
    that agrees with ``tag`` below some layer is reused up to that layer (see :class:`PrefixMemo`).
    """
    first = self.embed(seq, feats)[:P]
    pre = Batch(first[None], torch.ones(1, P, dtype=torch.long, device=first.device),
                torch.arange(P, device=first.device)[None], torch.zeros(1, dtype=torch.long), [seq])
    if memo is None:
        _, cache = self.forward(pre, use_cache=True)
    else:
        key = PrefixMemo.key(tag, first)
        entry, start = memo.lookup(key)
        if start is None:  # the whole prefix, stored
            cache = self.cache_from_snapshot(entry.snap)
        elif not isinstance(tag, LayeredTag):
            _, cache = self.forward(pre, use_cache=True)
            memo.put(key, self.cache_snapshot(cache))
        else:  # layers below ``start`` from the entry (none without one), the rest run with the hooks on
            cache = self.cache_from_snapshot(entry.snap[:start] if entry is not None else [])
            inputs = list(entry.inputs[:start]) if entry is not None else []
            h = entry.inputs[start] if entry is not None else first[None]
            self.run_layers(h, start, pre, cache=cache, keep_inputs=inputs)
            memo.put(key, self.cache_snapshot(cache), inputs)
    if B > 1:
        self.cache_select_rows(cache, torch.zeros(B, dtype=torch.long))
    return cache, pre.attention_mask.expand(B, P)


def sample_next(logits, temperature, top_p, gen):
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    sp, si = probs.sort(dim=-1, descending=True)
    keep = sp.cumsum(-1) - sp < top_p
    sp = sp * keep
    sp = sp / sp.sum(-1, keepdim=True)
    pick = torch.multinomial(sp, 1, generator=gen)
    return si.gather(-1, pick)[:, 0]
