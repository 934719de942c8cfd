"""Per-layer neuron privacy scores for the heatmaps: layers x neurons arrays, three methods.

Each method's record in :mod:`ng_core.method.registry` holds what computes it
(:attr:`~ng_core.method.registry.Method.score`, which calls its function here);
:func:`ng_core.method.score_run.compute_scores` runs the chosen one into a ``scores`` run bundle.

Units: ``residual`` (the output dims of each decoder layer: Neural Gate's neurons) and
``ffn`` (the inputs of each layer's ``down_proj``: KN/DEPN-style neurons).

- ``contrast`` (method D): paired Cohen's d of activations on a sensitive prompt vs
  the benign prompt of the same image, all layers captured in one forward per prompt.
- ``gradxact`` (method B): gradient x activation of J = mean log p(refusal) -
  mean log p(the unedited answer), computed with captum's LayerGradientXActivation
  over all layers at once; score = E_sensitive[A] - E_benign[A], plus the share of
  sensitive prompts with A > 0 (the analogue of the 0.3 consistency rule).
- ``mask`` (method A): Stage A run jointly on all chosen layers (one mask per layer,
  optimised together); score = mean 1 - tanh(m), frequency = consensus share.

Positions: ``subject`` (the subject's last token, as Neural Gate) or ``last`` (the
last prompt token, where the refusal is decided).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ng_core.data.records import ImageRecord
from ng_core.method.locality import LocalityCache
from ng_core.method.losses import answer_nll
from ng_core.method.localize import MaskConfig, binarize, consensus, learn_masks
from ng_core.models.hooks import layer_output_tensor
from ng_core.models.imagecache import encode, read
from ng_core.progress import as_progress

POSITIONS = ("subject", "last")


@dataclass
class ScoreConfig:
    method: str = "contrast"
    position: str = "subject"
    layers: tuple | None = None  # None: all layers
    max_pairs: int | None = None  # cap on (sensitive, benign) pairs per category
    batch_size: int = 8

    def to_dict(self):
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        return d


def pairs_from_records(records: list[ImageRecord], max_pairs: int | None = None):
    """(image, sensitive prompt, benign prompt, subject, refusal target) pairs, matched by index."""
    out = []
    for r in records:
        for s, b in zip(r.paraphrases, r.neighbours):
            out.append((r.image, s, b, r.subject, r.target))
    return out[:max_pairs] if max_pairs else out


def _pos(seq, position):
    return seq.subject_pos if position == "subject" else seq.last_prompt_pos


def capture_activations(adapter, items, layers, position="subject", batch_size=8, progress=None, stage="scores"):
    """{unit: [n_items, n_layers, size]} activations at one position per item = (image, prompt, subject)."""
    prog = as_progress(progress)
    res = {"residual": [], "ffn": []}
    for k in range(0, len(items), batch_size):
        chunk = items[k:k + batch_size]
        seqs = [adapter.build(p, subject=s, has_image=im is not None, reading=read(adapter, im)) for im, p, s in chunk]
        feats = [encode(adapter, im) for im, _, _ in chunk]
        batch = adapter.collate(seqs, feats)
        idx = torch.tensor([_pos(s, position) for s in seqs])
        rows = torch.arange(len(chunk))
        got = {"residual": {}, "ffn": {}}
        specs = []
        for l in layers:
            def out_fn(m, a, kw, o, l=l):
                got["residual"][l] = layer_output_tensor(o)[rows, idx].float().cpu()

            def in_fn(m, a, kw, l=l):
                got["ffn"][l] = a[0][rows, idx].float().cpu()

            specs += [adapter.hook(f"blocks.{l}.hook_resid_post", out_fn, "capture"),
                      adapter.hook(f"blocks.{l}.mlp.hook_post", in_fn, "capture")]
        with torch.no_grad(), adapter.hooked(specs):
            adapter.forward(batch)
        for u in res:
            res[u].append(torch.stack([got[u][l] for l in layers], dim=1))
        prog.update(stage, min(k + batch_size, len(items)), len(items), "activations")
    return {u: torch.cat(v) for u, v in res.items()}


def paired_cohens_d(a_s: torch.Tensor, a_b: torch.Tensor) -> torch.Tensor:
    """mean(a_S - a_B) / std(a_S - a_B) over pairs (dim 0); 0 where the spread is 0."""
    diff = a_s - a_b
    if diff.shape[0] < 2:
        return diff.mean(0)
    sd = diff.std(0, unbiased=True)
    d = diff.mean(0) / sd
    return torch.where(sd > 0, d, torch.zeros_like(d))


def contrast_scores(adapter, records, cfg: ScoreConfig, progress=None) -> dict:
    layers = list(cfg.layers) if cfg.layers is not None else list(range(adapter.n_layers))
    pairs = pairs_from_records(records, cfg.max_pairs)
    if len(pairs) < 2:
        raise ValueError("activation contrast needs at least 2 (sensitive, benign) prompt pairs")
    items = [(im, s, subj) for im, s, _, subj, _ in pairs] + [(im, b, subj) for im, _, b, subj, _ in pairs]
    acts = capture_activations(adapter, items, layers, cfg.position, cfg.batch_size, progress)
    n = len(pairs)
    out = {}
    for u, a in acts.items():
        out[f"contrast/{u}"] = paired_cohens_d(a[:n], a[n:])
        out[f"contrast/{u}_mean_sensitive"] = a[:n].mean(0)
        out[f"contrast/{u}_mean_benign"] = a[n:].mean(0)
    return out


def gradxact_scores(adapter, records, cfg: ScoreConfig, progress=None) -> dict:
    from captum.attr import LayerGradientXActivation  # deferred: captum is slow to import, only this score needs it

    prog = as_progress(progress)
    layers = list(cfg.layers) if cfg.layers is not None else list(range(adapter.n_layers))
    pairs = pairs_from_records(records, cfg.max_pairs)
    loc = LocalityCache(adapter)
    loc.prefetch([(im, p, subj) for im, s, b, subj, _ in pairs for p in (s, b)])
    sums = {("residual", k): 0 for k in ("s", "b")} | {("ffn", k): 0 for k in ("s", "b")}
    pos_count = {u: 0 for u in ("residual", "ffn")}
    total = 2 * len(pairs)
    done = 0
    for im, s_prompt, b_prompt, subj, target in pairs:
        for kind, prompt in (("s", s_prompt), ("b", b_prompt)):
            y_orig = loc.answer(im, prompt, subj, 5)
            reading = read(adapter, im)
            seqs = [adapter.build(prompt, subject=subj, answer=target, reading=reading)]
            if y_orig:
                seqs.append(adapter.build(prompt, subject=subj, answer=y_orig, reading=reading))
            feats = encode(adapter, im)
            batch = adapter.collate(seqs, [feats] * len(seqs))
            p = _pos(seqs[0], cfg.position)

            def fwd(embeds, batch=batch):
                b2 = type(batch)(embeds, batch.attention_mask, batch.position_ids, batch.offsets, batch.seqs)
                nll = answer_nll(adapter, adapter.forward(b2), b2)
                j = -nll[0] + (nll[1] if len(nll) > 1 else 0)
                return j.reshape(1)

            for unit, mods, to_input in (("residual", [adapter.layer_module(l) for l in layers], False),
                                         ("ffn", [adapter.down_proj(l) for l in layers], True)):
                with adapter.lock:
                    lga = LayerGradientXActivation(fwd, mods)
                    attr = lga.attribute(batch.embeds.detach(), attribute_to_layer_input=to_input)
                a = torch.stack([x[:, p].sum(0).float().cpu() for x in attr])  # [L, size]
                sums[(unit, kind)] = sums[(unit, kind)] + a
                if kind == "s":
                    pos_count[unit] = pos_count[unit] + (a > 0).float()
            done += 1
            prog.update("scores", done, total, "gradient x activation")
    n = max(len(pairs), 1)
    out = {}
    for unit in ("residual", "ffn"):
        out[f"gradxact/{unit}"] = (sums[(unit, "s")] - sums[(unit, "b")]) / n
        out[f"gradxact/{unit}_freq"] = pos_count[unit] / n
    return out


def mask_scores(adapter, records, cfg: ScoreConfig, mask_cfg: MaskConfig | None = None, progress=None) -> dict:
    mask_cfg = mask_cfg or MaskConfig()
    layers = list(cfg.layers) if cfg.layers is not None else list(range(adapter.n_layers))
    raw, _ = learn_masks(adapter, records, layers, mask_cfg, progress=progress,
                         category=records[0].category if records else "")
    score = torch.stack([(1 - torch.tanh(raw[l])).mean(0) for l in layers])
    freq = torch.stack([consensus(binarize(raw[l], mask_cfg.privacy_value, mask_cfg.topk), 0.0)[0]
                        for l in layers])
    return {"mask/residual": score, "mask/residual_freq": freq}
