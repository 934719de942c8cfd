"""Neural Gate Stages A and B: per-image neuron masks, then category consensus.

Stage A learns, for each image, a fp32 vector m per edited layer (init 2.0) whose
tanh scales that layer's output at the subject token; Adam (lr 0.5, eps 1e-3, 25 steps)
minimises the refusal NLL over six context templates + 1.25 x the NLL of the
unedited model's own answer to a benign neighbour + 0.001 mean|m-2|.
Stage B keeps the neurons flipped (tanh(m) < privacy_value, or top-k) in more than
30% (strictly) of a category's images.

Two schedules give the same masks:
- ``naive`` mirrors the reference code's cost: one image at a time, the image encoded
  and the whole sequence run at every step;
- ``fast`` encodes each image once, caches the keys/values of every sequence's prefix
  (everything before the subject token, which the mask cannot influence because
  attention is causal) and runs only the tail at each step, for all images at once,
  each row with its own mask; the tail's layers below the first masked layer are run
  once per chunk too (nothing there depends on the masks), so a step runs layers l..L.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from ng_core.models.hooks import StopForward, layer_output_tensor, replace_layer_output
from ng_core.models.imagecache import encode, read
from ng_core.method.interventions import Delta, delta_hooks, position_selector
from ng_core.method.locality import LocalityCache
from ng_core.method.losses import answer_nll
from ng_core.models.adapter import Batch, Sequence
from ng_core.models.decoding import common_prefix_len
from ng_core.models.memory import stage_a_max_rows
from ng_core.progress import as_progress
from ng_core.data.records import ImageRecord
from ng_core.errors import ArgumentError, DataError
from ng_core.storage.bundle_check import finite_number

CONTEXT_TEMPLATES = ("{}", "The image shows that. {}", "Therefore, it is. {}", "Because I am just. {}",
                     "I am an AI. {}", "You want to. {}")


@dataclass
class MaskConfig:
    """Stage A/B hyperparameters; defaults are the authors' code's."""

    init: float = 2.0
    lr: float = 0.5
    eps: float = 1e-3
    steps: int = 25
    l1: float = 1e-3
    kl_factor: float = 1.25
    early_stop: float = 0.05
    templates: tuple = CONTEXT_TEMPLATES
    privacy_value: float = 0.0
    topk: float | None = None
    threshold: float = 0.3
    neighbour_words: int = 5
    schedule: str = "fast"
    max_rows: int = 96  # rows (sequences) per fast-schedule batch

    def to_dict(self) -> dict:
        d = asdict(self)
        d["templates"] = list(self.templates)
        return d

    def __post_init__(self):
        for k in ("lr", "eps"):
            finite_number(getattr(self, k), f"mask {k}", positive=True, error=ArgumentError)
        for k in ("init", "privacy_value"):
            finite_number(getattr(self, k), f"mask {k}", error=ArgumentError)
        for k in ("l1", "kl_factor", "early_stop"):
            finite_number(getattr(self, k), f"mask {k}", minimum=0, error=ArgumentError)
        finite_number(self.steps, "mask steps", integer=True, minimum=1, error=ArgumentError)
        finite_number(self.max_rows, "mask max_rows", integer=True, minimum=1, error=ArgumentError)
        finite_number(self.threshold, "mask threshold", minimum=0, error=ArgumentError)
        if self.threshold >= 1:
            raise ArgumentError(f"mask threshold must be below 1 (a share of images), not {self.threshold}")
        if self.topk is not None:
            finite_number(self.topk, "mask topk", positive=True, maximum=1, error=ArgumentError)
        if not self.templates:
            raise ArgumentError("mask templates must not be empty")


@dataclass
class CategoryMask:
    """Stage A/B result for one category at one layer."""

    category: str
    layer: int
    raw: torch.Tensor  # [n_images, d] fp32 learned m
    freq: torch.Tensor  # [d] share of images where the neuron is flagged
    selected: torch.Tensor  # [d] bool, freq > threshold
    losses: list = field(default_factory=list)  # per image: list of per-step loss dicts
    images: list = field(default_factory=list)

    @property
    def n_selected(self) -> int:
        return int(self.selected.sum())

    def score(self) -> torch.Tensor:
        """Mean privacy score 1 - tanh(m) over the images (0..2; higher = more privacy-like)."""
        return (1 - torch.tanh(self.raw)).mean(0)


def binarize(raw: torch.Tensor, privacy_value: float = 0.0, topk: float | None = None) -> torch.Tensor:
    """Per-image flags: tanh(m) < privacy_value, or the ⌊topk·d⌋ smallest m (``topk`` a fraction)."""
    if topk is not None:
        d = raw.shape[-1]
        k = int(math.floor(topk * d))
        out = torch.zeros_like(raw, dtype=torch.bool)
        if k > 0:
            idx = raw.topk(k, dim=-1, largest=False).indices
            out.scatter_(-1, idx, True)
        return out
    return torch.tanh(raw) < privacy_value


def consensus(flags: torch.Tensor, threshold: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """(frequency [d], selected [d]) with selected = frequency > threshold (strict, as in the code)."""
    freq = flags.float().mean(0)
    return freq, freq > threshold


def reselect(cm: CategoryMask, privacy_value: float = 0.0, topk: float | None = None,
             threshold: float = 0.3) -> CategoryMask:
    """Re-binarize saved masks with new thresholds, without rerunning Stage A."""
    freq, sel = consensus(binarize(cm.raw, privacy_value, topk), threshold)
    return CategoryMask(cm.category, cm.layer, cm.raw, freq, sel, cm.losses, cm.images)


# ---------------------------------------------------------------------------- sequences
def _rewrite_sequences(adapter, rec: ImageRecord, templates) -> list[Sequence]:
    seqs = []
    reading = read(adapter, rec.image)
    for t in templates:
        composed = t.replace("{}", rec.rewrite_prompt, 1)
        i = composed.find("{}")
        if i < 0:
            raise DataError(f"rewrite prompt {rec.rewrite_prompt!r} of {rec.image} has no '{{}}' for the subject")
        prompt = composed[:i] + rec.subject + composed[i + 2:]
        seqs.append(adapter.build(prompt, subject_span=(i, i + len(rec.subject)), answer=rec.target,
                                  reading=reading))
    return seqs


def build_stage_a(adapter, rec: ImageRecord, cfg: MaskConfig, locality: LocalityCache):
    """The 7 teacher-forced sequences of one image and their loss weights."""
    seqs = _rewrite_sequences(adapter, rec, cfg.templates)
    weights = [1.0 / len(seqs)] * len(seqs)
    nb = rec.neighbours[0] if rec.neighbours else None
    if nb is not None:
        y_n = locality.answer(rec.image, nb, rec.subject, cfg.neighbour_words)
        if y_n:
            seqs.append(adapter.build(nb, subject=rec.subject, answer=y_n, reading=read(adapter, rec.image)))
            weights.append(cfg.kl_factor)
    return seqs, weights


# ---------------------------------------------------------------------------- the mask hook
def _mask_hook(adapter, masks_by_layer: dict, row_image: torch.Tensor, subject_pos: torch.Tensor):
    """Output hooks multiplying layer output at each row's subject position by tanh(m[row's image])."""
    specs = []
    for layer, m in masks_by_layer.items():
        def fn(module, args, kwargs, output, m=m):
            h = layer_output_tensor(output)
            sel = position_selector(kwargs["position_ids"], subject_pos)[..., None].to(h.device)
            g = torch.tanh(m)[row_image.to(m.device)].to(h.device)  # [B, d]
            new = torch.where(sel, (h.float() * g[:, None, :]).to(h.dtype), h)
            return replace_layer_output(output, new)

        specs.append(adapter.hook(f"blocks.{layer}.hook_resid_post", fn, "neural-gate mask"))
    return specs


def _loss_rows(adapter, hidden, batch, tail_start=None):
    """Per-row token-mean NLL of each row's targets."""
    return answer_nll(adapter, hidden, batch, tail_start)


# ---------------------------------------------------------------------------- Stage A
def snapshot_cache(adapter, cache) -> list:
    """The prefix keys/values held by a KV cache (tensors computed without grad)."""
    return adapter.cache_snapshot(cache)


def restore_cache(adapter, cache, snap: list) -> None:
    """Put the prefix back, dropping the step's tail and its autograd history."""
    adapter.cache_restore(cache, snap)


def _prefix_cache(adapter, embs, seqs, row_image: torch.Tensor, deltas) -> tuple:
    """(cache, mask): every row's keys/values before its subject token, in two levels.

    An image's rows (context templates, neighbour) share the image block and the lines read from it, about
    200 tokens on the reading model: that part runs once per image, its keys/values are copied to the image's
    rows, and only each row's question up to the subject runs per row. Padding sits on the left of each
    level; the mask marks it, the position ids count real tokens only.
    """
    n_img = int(row_image.max()) + 1
    rows_of = [(row_image == j).nonzero()[:, 0].tolist() for j in range(n_img)]
    shared = [common_prefix_len([seqs[i] for i in rows]) for rows in rows_of]  # never past a subject
    dev = embs[0].device
    with torch.no_grad(), adapter.hooked(delta_hooks(adapter, deltas)):
        first = adapter.collate_embeds([embs[rows[0]][:q] for rows, q in zip(rows_of, shared)],
                                       [seqs[rows[0]] for rows in rows_of], padding="left")
        _, cache = adapter.forward(first, use_cache=True)
        idx = row_image.to(dev)
        adapter.cache_select_rows(cache, idx)  # the image's part, copied to each of its rows
        mask = first.attention_mask.index_select(0, idx.to(first.attention_mask.device))
        q = torch.tensor(shared, dtype=torch.long)[row_image]
        rest = [e[int(q[i]):s.subject_pos] for i, (e, s) in enumerate(zip(embs, seqs))]
        if max(len(r) for r in rest):
            mid = adapter.collate_embeds([r if len(r) else e[:0] for r, e in zip(rest, embs)], seqs, padding="left")
            mid = Batch(mid.embeds, torch.cat([mask, mid.attention_mask], dim=1),
                        mid.position_ids + q[:, None].to(mid.position_ids.device), mid.offsets, seqs)
            adapter.forward(mid, cache=cache, use_cache=True)
            mask = mid.attention_mask
    return cache, mask


def _tail_entering(adapter, start: int, tail, cache, snap: list, deltas) -> torch.Tensor:
    """The tails' residual stream entering layer ``start`` (the first masked layer), computed once per chunk.

    Below the first masked layer nothing depends on the masks (they act on layer outputs at the subject,
    and the tails start there), so each step runs only layers ``start..L-1``; the cache is restored after.
    """
    if start == 0:
        return tail.embeds
    box = {}

    def grab(module, args, kwargs):
        box["h"] = args[0] if args else kwargs["hidden_states"]
        raise StopForward

    specs = [adapter.hook(f"blocks.{start}.hook_resid_pre", grab, "capture")] + delta_hooks(adapter, list(deltas))
    try:
        with torch.no_grad(), adapter.hooked(specs):
            adapter.forward(tail, cache=cache, use_cache=True)
    except StopForward:
        pass
    finally:
        restore_cache(adapter, cache, snap)
    return box["h"]


def learn_masks(adapter, records: list[ImageRecord], layers: list[int], cfg: MaskConfig | None = None,
                deltas: list[Delta] = (), progress=None, locality: LocalityCache | None = None,
                category: str = "") -> dict[int, torch.Tensor]:
    """Stage A for ``records``: {layer: raw m [n_images, d]} (and loss history in ``progress``)."""
    cfg = cfg or MaskConfig()
    prog = as_progress(progress)
    locality = locality or LocalityCache(adapter)
    layers = sorted(int(l) for l in layers)
    for l in layers:
        adapter.check_layer(l)
    n, d = len(records), adapter.hidden_size
    raw = {l: torch.full((n, d), float(cfg.init), dtype=torch.float32) for l in layers}
    history = [[] for _ in range(n)]
    if n == 0:
        return raw, history
    prog.update("localize", 0, cfg.steps * (n if cfg.schedule == "naive" else 1), "preparing sequences")
    locality.prefetch([(r.image, r.neighbours[0], r.subject) for r in records if r.neighbours])
    built = [build_stage_a(adapter, r, cfg, locality) for r in records]
    if cfg.schedule == "naive":
        _stage_a_naive(adapter, records, built, layers, cfg, deltas, raw, history, prog, category)
    elif cfg.schedule == "fast":
        _stage_a_fast(adapter, records, built, layers, cfg, deltas, raw, history, prog, category)
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; use 'fast' or 'naive'")
    return raw, history


def _loss_terms(nll_rows, weights, row_image, n_img, params, cfg, layers):
    """Per-image loss (refusal mean + kl * neighbour + L1), and its parts for display."""
    w = torch.tensor(weights, dtype=torch.float32)
    per_row = nll_rows.float() * w
    img = torch.zeros(n_img).index_add(0, row_image, per_row)
    l1 = torch.stack([(params[l] - 2.0).abs().mean(-1) for l in layers]).mean(0) * cfg.l1
    return img + l1, l1


def _stage_a_naive(adapter, records, built, layers, cfg, deltas, raw, history, prog, category):
    total = cfg.steps * len(records)
    done = 0
    for i, (rec, (seqs, weights)) in enumerate(zip(records, built)):
        m = {l: torch.full((1, adapter.hidden_size), float(cfg.init), dtype=torch.float32, requires_grad=True)
             for l in layers}
        opt = torch.optim.Adam(list(m.values()), lr=cfg.lr, eps=cfg.eps, weight_decay=0.0)
        row_image = torch.zeros(len(seqs), dtype=torch.long)
        spos = torch.tensor([s.subject_pos for s in seqs], dtype=torch.long)
        for step in range(cfg.steps):
            feats = adapter.encode_image_uncached(rec.image)  # the reference encodes at every step
            batch = adapter.collate(seqs, [feats] * len(seqs), padding="right")
            specs = _mask_hook(adapter, {l: m[l] for l in layers}, row_image, spos)
            with adapter.hooked(specs + delta_hooks(adapter, deltas)):
                hidden = adapter.forward(batch)
                nll = _loss_rows(adapter, hidden, batch)
            loss, l1 = _loss_terms(nll, weights, row_image, 1, m, cfg, layers)
            rec_loss = float(loss[0].detach())
            history[i].append(_terms(nll.detach(), weights, float(l1[0].detach())))
            done += 1
            prog.update("localize", done, total, f"{category} image {i + 1}/{len(records)} step {step + 1}",
                        loss=rec_loss, **history[i][-1])
            if rec_loss < cfg.early_stop:
                break
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
        for l in layers:
            raw[l][i] = m[l].detach()[0]


def _terms(nll, weights, l1):
    n_ref = sum(1 for w in weights if w != weights[-1]) if len(set(weights)) > 1 else len(weights)
    refusal = float(nll[:n_ref].mean())
    out = {"refusal_nll": refusal, "l1": l1}
    if n_ref < len(weights):
        out["neighbour_nll"] = float(nll[n_ref:].mean())
    return out


def _stage_a_fast(adapter, records, built, layers, cfg, deltas, raw, history, prog, category):
    # Flatten rows, grouping whole images into chunks of at most max_rows sequences (fewer where the device's
    # free memory binds: each row holds its own copy of its image's keys/values, see ng_core.models.memory).
    max_rows = stage_a_max_rows(adapter, [s for s, _ in built], layers[0], cfg.max_rows)
    chunks, cur, cur_rows = [], [], 0
    for i, (seqs, _) in enumerate(built):
        if cur and cur_rows + len(seqs) > max_rows:
            chunks.append(cur)
            cur, cur_rows = [], 0
        cur.append(i)
        cur_rows += len(seqs)
    if cur:
        chunks.append(cur)
    total = cfg.steps * len(chunks)
    done = 0
    for chunk in chunks:
        seqs, weights, row_image, feats = [], [], [], []
        for j, i in enumerate(chunk):
            s, w = built[i]
            f = encode(adapter, records[i].image)
            seqs += s
            weights += w
            row_image += [j] * len(s)
            feats += [f] * len(s)
        row_image = torch.tensor(row_image, dtype=torch.long)
        spos = torch.tensor([s.subject_pos for s in seqs], dtype=torch.long)
        with torch.no_grad():
            embs = [adapter.embed(s, f) for s, f in zip(seqs, feats)]
        cache, prefix_mask = _prefix_cache(adapter, embs, seqs, row_image, deltas)
        snap = snapshot_cache(adapter, cache)
        tail = adapter.collate_embeds([e[s.subject_pos:] for e, s in zip(embs, seqs)], seqs, padding="right")
        tail.position_ids = tail.position_ids + spos[:, None].to(tail.position_ids.device)
        tail.attention_mask = torch.cat([prefix_mask, tail.attention_mask], dim=1)
        h_tail = _tail_entering(adapter, layers[0], tail, cache, snap, deltas)
        m = {l: torch.full((len(chunk), adapter.hidden_size), float(cfg.init), dtype=torch.float32,
                           requires_grad=True) for l in layers}
        opt = torch.optim.Adam(list(m.values()), lr=cfg.lr, eps=cfg.eps, weight_decay=0.0)
        active = torch.ones(len(chunk), dtype=torch.bool)
        for step in range(cfg.steps):
            specs = _mask_hook(adapter, {l: m[l] for l in layers}, row_image, spos)
            with adapter.hooked(specs + delta_hooks(adapter, deltas)):
                try:
                    hidden = adapter.run_layers(h_tail, layers[0], tail, cache=cache)
                    nll = _loss_rows(adapter, hidden, tail, tail_start=spos)
                finally:
                    restore_cache(adapter, cache, snap)
            loss, l1 = _loss_terms(nll, weights, row_image, len(chunk), m, cfg, layers)
            for j, i in enumerate(chunk):
                if active[j]:
                    rows = (row_image == j).nonzero()[:, 0]
                    history[i].append(_terms(nll.detach()[rows], [weights[r] for r in rows], float(l1[j].detach())))
            done += 1
            prog.update("localize", done, total,
                        f"{category} images {chunk[0] + 1}-{chunk[-1] + 1}/{len(records)} step {step + 1}",
                        loss=float(loss.detach()[active].mean()) if active.any() else 0.0)
            stop = active & (loss.detach() < cfg.early_stop)
            active = active & ~stop
            if not active.any():
                break
            keep = {l: m[l].detach()[~active].clone() for l in layers}
            opt.zero_grad()
            (loss * active.float()).sum().backward()
            opt.step()
            if (~active).any():
                with torch.no_grad():
                    for l in layers:
                        m[l][~active] = keep[l]
        for j, i in enumerate(chunk):
            for l in layers:
                raw[l][i] = m[l].detach()[j]


# ---------------------------------------------------------------------------- Stage B
def localize_category(adapter, records: list[ImageRecord], layer: int | list[int], cfg: MaskConfig | None = None,
                      deltas: list[Delta] = (), progress=None, locality: LocalityCache | None = None
                      ) -> dict[int, CategoryMask]:
    """Stages A and B for one category's training images: {layer: CategoryMask}."""
    cfg = cfg or MaskConfig()
    layers = [layer] if isinstance(layer, int) else list(layer)
    category = records[0].category if records else ""
    raw, history = learn_masks(adapter, records, layers, cfg, deltas, progress, locality, category)
    out = {}
    for l in layers:
        freq, sel = consensus(binarize(raw[l], cfg.privacy_value, cfg.topk), cfg.threshold)
        out[l] = CategoryMask(category, l, raw[l], freq, sel, history, [str(r.image) for r in records])
    return out
