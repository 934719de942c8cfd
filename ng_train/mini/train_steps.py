"""Training pieces around the frozen ``ng-mini-llava`` that the projector and the reader stages share.

Why a module of its own: both stages compute frozen vision features the same way, schedule the learning rate
the same way, score a batch by the loss on its answer tokens only, and distil unrelated questions from the
LM's own text-only answers. torch is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math

import torch

from ng_core.models.image_processing import preprocess
from ng_core.models.mini import assemble as ML


def vision_features(adapter, images, layer: int, batch: int = 16):
    """Frozen DINOv2 hidden states (CLS dropped) of ``layer`` for PIL images: [n, N_img, 384] fp32."""
    vt = adapter.model.model.vision_tower
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            px = torch.cat([preprocess(im, adapter.image_cfg) for im in images[i:i + batch]])
            px = px.to(next(vt.parameters()).device)
            hs = vt(pixel_values=px, output_hidden_states=True).hidden_states[layer]
            out.append(hs[:, 1:].float())
    return torch.cat(out)



def lr_at(step: int, steps: int, lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio * lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


class PrefixCache:
    """Key/values of the token prefix every training sequence shares (system prompt up to the image).

    Nothing before the image depends on the projector, so it is computed once, without gradient, and
    every batch starts from it: about a fifth fewer tokens per step.
    """

    def __init__(self, adapter, seq):
        first_img = int(seq.image_positions[0]) if len(seq.image_positions) else len(seq.input_ids)
        self.ids = seq.input_ids[:first_img].clone()
        self.length = len(self.ids)
        dev = adapter.input_device
        with torch.no_grad():
            emb = adapter.lm.embed_tokens(self.ids.to(dev))[None]
            out = adapter.lm(inputs_embeds=emb, position_ids=torch.arange(self.length, device=dev)[None],
                             use_cache=True)
        self.kv = [(layer.keys, layer.values) for layer in out.cache.layers]

    def matches(self, seq) -> bool:
        return len(seq.input_ids) > self.length and bool((seq.input_ids[: self.length] == self.ids).all())

    def cache_for(self, batch_size: int):
        from transformers import DynamicCache  # deferred: transformers (the scripts set HF_HUB_OFFLINE first)

        return DynamicCache(ddp_cache_data=[
            (k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in self.kv
        ])


def answer_loss(adapter, seqs, feats, prefix: PrefixCache | None = None):
    """Mean token NLL over the answer tokens of a batch (right padded), lm_head only at target positions.

    With ``prefix``, the shared prefix is taken from its cache (exactly the same result, fewer tokens).
    """
    P = prefix.length if prefix is not None and all(prefix.matches(s) for s in seqs) else 0
    dev = adapter.input_device
    embs = []
    for s, f in zip(seqs, feats):
        emb = adapter.lm.embed_tokens(s.input_ids[P:].to(dev))
        if f is not None and len(s.image_positions):
            emb = emb.index_put(((s.image_positions - P).to(dev),), f)
        embs.append(emb)
    T = max(e.shape[0] for e in embs)
    B = len(embs)
    x = embs[0].new_zeros(B, T, embs[0].shape[1])
    mask = torch.zeros(B, P + T, dtype=torch.long)
    mask[:, :P] = 1
    for i, e in enumerate(embs):
        x[i, : e.shape[0]] = e
        mask[i, P: P + e.shape[0]] = 1
    mask = mask.to(dev)
    pos = (torch.arange(T, device=dev) + P)[None].expand(B, T)
    kw = {"cache": prefix.cache_for(B), "use_cache": True} if P else {"use_cache": False}
    hidden = adapter.lm(inputs_embeds=x, attention_mask=mask, position_ids=pos, **kw).last_hidden_state
    rows, cols, tgts = [], [], []
    for i, s in enumerate(seqs):
        tp = s.target_positions - P
        rows.append(torch.full_like(tp, i))
        cols.append(tp)
        tgts.append(s.targets)
    rows, cols, tgts = torch.cat(rows), torch.cat(cols), torch.cat(tgts)
    logits = adapter.logits(hidden[rows.to(hidden.device), cols.to(hidden.device)]).float()
    tok_loss = torch.nn.functional.cross_entropy(logits, tgts.to(logits.device), reduction="none")
    per_seq = [v.mean() for v in torch.split(tok_loss.detach(), [len(s.targets) for s in seqs])]
    return tok_loss.mean(), per_seq


def general_answer_targets(adapter, questions, n_tokens: int) -> dict:
    """Distillation targets for unrelated questions: the LM's own greedy text-only answers (first ``n_tokens``
    tokens; an answer that stopped by itself keeps its end-of-turn token, so the stop is learnt too)."""
    im_end_id = adapter.tokenizer.convert_tokens_to_ids(ML.IM_END_TOKEN)
    targets = {}
    with torch.no_grad():
        for i in range(0, len(questions), 8):
            qs = questions[i:i + 8]
            gens = adapter.generate([(None, q) for q in qs], max_new_tokens=n_tokens)
            for q, gen in zip(qs, gens):
                ids = list(gen.token_ids)
                if len(ids) < n_tokens:
                    ids.append(im_end_id)
                targets[q] = ids
    return targets
