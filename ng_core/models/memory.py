"""Memory model: bytes per batched row of each stage, from the model's config, and the rows that fit.

Every stage that batches rows (Stage A's fast schedule, Stage C's rows of one edit, batched answers, batched
answer scoring) asks :func:`row_budget` how many rows fit in the memory free on the devices that hold the
decoder layers. The bytes come from a :class:`ModelShape` (layers, hidden size, FFN size, heads, key/value
heads, head dim, vocabulary, dtype) and the rows' token counts:

* ``kv_token``: the keys and values one token leaves in every layer's cache, ``2·L·kv_heads·head_dim·b``;
* ``act_token_layer``: what autograd keeps per token and layer when a layer runs with gradients (the layer's
  input and mid-layer residual, the normed input, q and k after rotary, v, the attention output, gate, up,
  act(gate), gate·up, and in fp16/bf16 both norms' fp32 copies), an upper bound checked against the tensors
  autograd saves in tiny models (tests/test_memory.py);
* ``fwd_token``: one layer's transient tensors per token without gradients;
* ``attn``: eager attention's probabilities, ``heads·q·k·(b + 4)`` per layer (fp32 softmax and its cast), or
  a fused kernel's log-sum-exp (``sdpa``, the default);
* ``logit_token``: one scored position's logits in the model's dtype, their fp32 copy and log-softmax.

On CPU there is no budget unless one is given (``NG_MEMORY_BUDGET``, e.g. ``20GiB``, or ``free=``): the stages
keep their own caps (``max_rows``, ``batch_size``) and give the same results as before.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass

import torch

from ng_core.errors import NGError
from ng_core.models.decoding import common_prefix_len

GIB = 1 << 30
MIB = 1 << 20
#: Share of the free memory a stage plans to use: the allocator's fragmentation and small tensors take the rest.
HEADROOM = 0.85
BUDGET_ENV = "NG_MEMORY_BUDGET"


class MemoryBudgetError(NGError, MemoryError):
    """Even the smallest batch a stage can run needs more memory than the device has free."""


@dataclass(frozen=True)
class ModelShape:
    """What the memory model reads from a config: the decoder's sizes, its dtype and image tokens per image."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int = 2
    image_tokens: int = 0
    eager: bool = False  # eager attention (probabilities kept), not a fused kernel (sdpa, flash)
    sandwich_norms: bool = False  # Gemma's four norms per layer and q/k norms

    @classmethod
    def from_config(cls, config, dtype=torch.float16, image_tokens: int = 0) -> "ModelShape":
        t = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        heads = int(t.num_attention_heads)
        head_dim = getattr(t, "head_dim", None) or t.hidden_size // heads
        b = dtype if isinstance(dtype, int) else torch.empty((), dtype=dtype).element_size()
        return cls(layers=int(t.num_hidden_layers), hidden=int(t.hidden_size), ffn=int(t.intermediate_size),
                   heads=heads, kv_heads=int(getattr(t, "num_key_value_heads", None) or heads),
                   head_dim=int(head_dim), vocab=int(t.vocab_size), dtype_bytes=int(b),
                   image_tokens=int(image_tokens),
                   eager=getattr(config, "_attn_implementation", None) == "eager",
                   sandwich_norms=str(getattr(t, "model_type", "")).startswith("gemma"))

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ per token
    @property
    def kv_token(self) -> int:
        """Keys + values of one token in every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes

    @property
    def act_token_layer(self) -> int:
        """Saved for backward, per token and layer (see the module docstring)."""
        b, h, f = self.dtype_bytes, self.hidden, self.ffn
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        norms = 4 if self.sandwich_norms else 2  # Gemma norms before and after attention and the MLP, and q/k
        extra = (2 * h + q + kv) if self.sandwich_norms else 0
        return b * (3 * h + 2 * q + 3 * kv + 4 * f + extra) + (norms * 2 * 4 * h if b < 4 else 0)

    @property
    def fwd_token(self) -> int:
        """One layer's live tensors per token without gradients (residual, norm, MLP's gate/up/act)."""
        return self.dtype_bytes * (4 * self.hidden + 3 * self.ffn) + 8 * self.hidden

    def attn(self, q: int, k: int) -> int:
        """Attention's own tensors in one layer: eager attention's probabilities (fp32 softmax and its cast), or a
        fused kernel's log-sum-exp."""
        if self.eager:
            return self.heads * q * k * (self.dtype_bytes + 4)
        return self.heads * q * 4

    @property
    def logit_token(self) -> int:
        return self.vocab * (self.dtype_bytes + 8)

    def delta_state(self) -> int:
        """Stage C's fp32 ΔW, its gradient and Adam's two moments (not per row)."""
        return 4 * 4 * self.hidden * self.ffn


# ------------------------------------------------------------------ per row, per stage
def stage_a_row(s: ModelShape, prefix: int, tail: int, answer: int, layer: int, shared: int = 0) -> int:
    """Stage A (fast): one row's copy of its prefix keys/values (all layers), then, during a step, the
    keys/values of layers ``layer..`` concatenated with the tail's, the tail's activations and attention there,
    the tail entering ``layer`` and the scored logits. ``shared``: the image part's length, whose keys/values
    are computed once per image (counted here once per row: an upper bound)."""
    above = s.layers - layer
    held = prefix * s.kv_token
    step = (above * (prefix + tail) * s.kv_token) // s.layers + tail * above * s.act_token_layer \
        + above * s.attn(tail, prefix + tail) + answer * s.logit_token + tail * s.hidden * s.dtype_bytes
    build = shared * s.kv_token + (prefix - shared) * s.fwd_token + s.attn(prefix - shared, prefix)
    return held + max(step, build)


def stage_c_row(s: ModelShape, tokens: int, answer: int, layer: int, shared: int = 0) -> int:
    """Stage C (fast): the row's hidden states entering ``layer`` (held over the edit's steps), then per step the
    activations of layers ``layer..`` with gradients for the row's own tokens (the ``shared`` prompt start runs
    once for all rows: :func:`stage_c_shared`), the keys/values its tail sees there, attention and the scored
    logits."""
    above = s.layers - layer
    held = tokens * s.hidden * s.dtype_bytes
    step = (tokens - shared) * above * s.act_token_layer + above * s.attn(tokens - shared, tokens) \
        + answer * s.logit_token + (above * tokens * s.kv_token // s.layers if shared else 0)
    entering = tokens * s.fwd_token + s.attn(tokens, tokens)
    return held + max(step, entering)


def stage_c_shared(s: ModelShape, shared: int, layer: int) -> int:
    """Stage C: the prompt start the edit's rows share, run once per step with gradients (not per row), and the
    fp32 ΔW with its gradient and Adam's moments."""
    above = s.layers - layer
    return shared * above * s.act_token_layer + above * s.attn(shared, shared) + s.delta_state()


def generate_row(s: ModelShape, prompt: int, new_tokens: int) -> int:
    """A batched answer: the row's keys/values for prompt + answer, the prompt pass's transient layer tensors,
    and the last position's logits."""
    return (prompt + new_tokens) * s.kv_token + prompt * s.fwd_token + s.attn(prompt, prompt) + s.logit_token


def score_row(s: ModelShape, tokens: int, answer: int) -> int:
    """A scored answer (teacher forcing, no gradients): residual and final hidden states, one layer's transient
    tensors, attention, the answer's logits."""
    return tokens * (2 * s.hidden * s.dtype_bytes + s.fwd_token) + s.attn(tokens, tokens) + answer * s.logit_token


# ------------------------------------------------------------------ budgets
def parse_bytes(text) -> int:
    """``"20GiB"``, ``"512MiB"``, ``"24GB"`` or a number of bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*", str(text))
    if not m:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 20GiB, 512MiB or bytes)")
    unit = (m.group(2) or "b").lower().rstrip("b")
    power = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[:1]]
    base = 1024 if "i" in unit else 1000
    return int(float(m.group(1)) * base ** power)


def layer_shares(adapter) -> dict:
    """{device: share of the decoder layers it holds} (accelerate's device maps may spread them)."""
    counts: dict = {}
    for layer in adapter.layers:
        p = next(layer.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
        counts[dev] = counts.get(dev, 0) + 1
    n = sum(counts.values()) or 1
    return {d: c / n for d, c in counts.items()}


def free_memory(adapter, free: int | dict | None = None) -> dict:
    """{device: free bytes} for the accelerator devices holding layers; {} when there is no budget.

    ``free`` (bytes for every device, or a {device: bytes} dict), else ``NG_MEMORY_BUDGET``, else
    ``torch.cuda.mem_get_info`` for each CUDA device. Layers on the CPU or offloaded to disk are not counted:
    without a given budget a CPU-only model has none (today's caps apply)."""
    shares = layer_shares(adapter)
    if isinstance(free, dict):
        return {torch.device(d): int(v) for d, v in free.items()}
    if free is None and os.environ.get(BUDGET_ENV):
        free = parse_bytes(os.environ[BUDGET_ENV])
    if free is not None:
        devs = [d for d in shares if d.type not in ("meta",)] or [torch.device("cpu")]
        return {d: int(free) for d in devs}
    out = {}
    for d in shares:
        if d.type == "cuda":
            out[d] = int(torch.cuda.mem_get_info(d)[0])
    return out


def rows_that_fit(per_row: int, free: dict, shares: dict, *, fixed: int = 0, cap: int | None = None,
                  minimum: int = 1, stage: str = "a batch") -> int | None:
    """Rows whose ``per_row`` bytes (spread over the devices like the layers) fit in ``free`` after ``fixed``.

    ``free`` empty: no budget, ``cap`` (None: unlimited). Fewer than ``minimum`` rows: :class:`MemoryBudgetError`
    naming the stage and the numbers."""
    if not free:
        return cap
    fit = None
    for dev, avail in free.items():
        share = shares.get(dev, 1.0 if len(free) == 1 else 0.0)
        if share <= 0:
            continue
        usable = avail * HEADROOM - fixed * share
        n = math.floor(usable / (per_row * share)) if per_row > 0 else cap or 1 << 30
        fit = n if fit is None else min(fit, n)
    fit = cap if fit is None else fit
    if fit is not None and fit < minimum:
        need = (fixed + minimum * per_row) / GIB
        have = sum(free.values()) / GIB
        raise MemoryBudgetError(
            f"{stage} needs about {need:.2f} GiB for its smallest batch ({minimum} rows of "
            f"{per_row / MIB:.1f} MiB{f' + {fixed / MIB:.0f} MiB' if fixed else ''}), but only {have:.2f} GiB "
            f"is free (using {HEADROOM:.0%} of it); use fewer or shorter rows, a smaller dtype, or shard the "
            "model over more devices (device_map='auto')")
    return fit if cap is None else min(fit, cap)


def row_budget(adapter, per_row: int, *, fixed: int = 0, cap: int | None = None, minimum: int = 1,
               stage: str = "a batch", free=None) -> int | None:
    """How many rows of ``per_row`` bytes a stage may batch now (``cap`` when there is no budget)."""
    return rows_that_fit(per_row, free_memory(adapter, free), layer_shares(adapter), fixed=fixed, cap=cap,
                         minimum=minimum, stage=stage)


def shape_of(adapter) -> ModelShape:
    return ModelShape.from_config(adapter.model.config, adapter.dtype)


def chunks(n: int, size: int | None) -> list[range]:
    """``range(n)`` in consecutive pieces of at most ``size`` (one piece when ``size`` is None)."""
    size = n if not size else max(1, int(size))
    return [range(k, min(n, k + size)) for k in range(0, n, size)] or [range(0)]


# ------------------------------------------------------------------ the stages' budgets, from their sequences
def stage_a_bytes(adapter, images: list, layer: int) -> tuple[int, int]:
    """(bytes per row, rows of the largest image) of Stage A's fast schedule for ``images`` (each image's
    sequences), from the longest prefix and tail among them."""
    s = shape_of(adapter)
    per_row = 0
    for seqs in images:
        shared = common_prefix_len(seqs)
        for q in seqs:
            prefix = int(q.subject_pos)
            per_row = max(per_row, stage_a_row(s, prefix, len(q) - prefix, len(q.targets), layer, shared))
    return per_row, max(len(seqs) for seqs in images)


def stage_a_max_rows(adapter, images: list, layer: int, cap: int, free=None) -> int:
    """Stage A (fast): rows per chunk, ``cap`` (``max_rows``) or fewer where the free memory binds. A chunk holds
    whole images, so the smallest chunk is the largest image's rows."""
    per_row, most = stage_a_bytes(adapter, images, layer)
    return row_budget(adapter, per_row, cap=cap, minimum=most, free=free,
                      stage=f"Stage A (localize) at layer {layer}, {most} rows per image")


def check_stage_c(adapter, seqs: list, layer: int, free=None) -> None:
    """Stage C runs one edit's rows together (its loss is their weighted sum): refuse plainly if they cannot fit."""
    s = shape_of(adapter)
    shared = common_prefix_len(seqs) if len(seqs) > 1 else 0  # rows without the image share less: an upper bound
    per_row = max(stage_c_row(s, len(q), len(q.targets), layer, shared) for q in seqs)
    row_budget(adapter, per_row, fixed=stage_c_shared(s, shared, layer), minimum=len(seqs), free=free,
               stage=f"Stage C (edit) at layer {layer}")


def answer_rows(adapter, seqs: list, new_tokens: int, free=None) -> int | None:
    """Rows of batched answers that fit (None: no budget, as many as asked)."""
    per_row = generate_row(shape_of(adapter), max(len(q) for q in seqs), new_tokens)
    return row_budget(adapter, per_row, free=free, stage="batched answers")


def score_rows(adapter, seqs: list, free=None) -> int | None:
    """Rows of batched answer scoring that fit (None: no budget)."""
    per_row = score_row(shape_of(adapter), max(len(q) for q in seqs), max(len(q.targets) for q in seqs))
    return row_budget(adapter, per_row, free=free, stage="answer scoring")
