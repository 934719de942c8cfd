"""The model interface the rest of the core uses, and the token-sequence types it builds.

Everything position-related is computed from token segments and character offsets,
never from hard-coded offsets, so the subject position is exact for any tokenizer
and any number of image tokens.
"""
from __future__ import annotations

import abc
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ng_core.models.hooks import HookSpec


@dataclass
class Sequence:
    """One tokenized multimodal sequence (image tokens already expanded).

    ``input_ids`` holds the prompt, then the answer without its last token (teacher
    forcing: the logits at position t score token t+1), so ``targets`` are scored by
    the logits at ``target_positions``.
    """

    input_ids: torch.Tensor  # [T] long
    image_positions: torch.Tensor  # [N_img] long (empty without an image)
    prompt_len: int  # tokens up to and including the generation prompt
    subject_pos: int | None  # last token of the subject, or None
    last_prompt_pos: int  # last token of the prompt (the refusal decision point)
    targets: torch.Tensor  # [|y|] long (empty without an answer)
    text: str  # the rendered prompt text (chat template applied)
    question_pos: int = 0  # first token of the user's question (what precedes it is template, image, reading)
    #: The family's rotary positions of each token when they are not the token index (Qwen's M-RoPE:
    #: [3, T], from the model's own ``get_rope_index``), and the shift of the text positions after them.
    rope_positions: torch.Tensor | None = None
    rope_delta: int = 0
    #: Qwen3-VL's DeepStack features of this sequence's image, [N_img, k, d] (set when it is embedded): the
    #: decoder adds slice j to the image tokens' residual stream after layer j.
    deepstack: torch.Tensor | None = None

    @property
    def target_positions(self) -> torch.Tensor:
        n = len(self.targets)
        return torch.arange(self.prompt_len - 1, self.prompt_len - 1 + n)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass
class Batch:
    """Padded sequences ready for the language model.

    ``offsets[i]`` is how far row i was shifted right by left padding; every absolute
    position of a ``Sequence`` maps to ``offsets[i] + pos`` in the batch.
    ``position_ids`` count real tokens only, so they equal the unpadded positions.
    ``rows``: which of a :meth:`generate` call's items each row is (set by ``generate`` for the hooks it asks for:
    a batch of one image's rows is a part of the call).
    """

    embeds: torch.Tensor  # [B, T, d]
    attention_mask: torch.Tensor  # [B, T] long
    position_ids: torch.Tensor  # [B, T] long
    offsets: torch.Tensor  # [B] long
    seqs: list
    rows: list | None = None

    @property
    def size(self) -> int:
        return self.embeds.shape[0]


@dataclass
class ModelCaches:
    """What a loaded model remembers between calls, held by the adapter (never attached to it ad hoc).

    ``features``: projected image features by preprocessed-pixel hash (dataset files only);
    ``readings``: OCR reading blocks by full-resolution pixel hash (dataset files only);
    ``locality``: the unedited model's answers to benign prompts, by (image path, prompt)
    (:class:`ng_core.method.locality.LocalityCache`). Uploads never enter these shared caches:
    they go to a session's :class:`ng_core.models.imagecache.PrivateCache`.
    """

    features: OrderedDict = field(default_factory=OrderedDict)
    readings: OrderedDict = field(default_factory=OrderedDict)
    locality: dict = field(default_factory=dict)

    def clear(self) -> None:
        self.features.clear()
        self.readings.clear()
        self.locality.clear()


#: Stable names of the places the core hooks (TransformerLens-style), ``{L}`` = decoder layer:
#: ``(kind of hook, what it sees)``.
HOOK_POINTS = {
    "blocks.{L}.hook_resid_pre": ("pre", "the decoder layer's input (and its position ids)"),
    "blocks.{L}.hook_resid_post": ("output", "the decoder layer's output: the paper's neurons (residual dims)"),
    "blocks.{L}.mlp.hook_post": ("pre", "down_proj's input: the FFN neurons"),
    "blocks.{L}.mlp.hook_out": ("output", "down_proj's output (where a weight delta adds x @ dW^T)"),
}
_POINT = re.compile(r"blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|mlp\.hook_post|mlp\.hook_out)")


class ModelAdapter(abc.ABC):
    """Abstract places (layer output, ``down_proj``, subject token) mapped to one model family.

    This is everything the core (method, evaluation, studio) uses of a model; a new family implements the
    abstract members and inherits the rest.
    """

    model_id: str
    family: str
    source: str  # where the weights came from (a folder, or a registry name)
    model: nn.Module  # the whole vision-language model (frozen; never edited in place)
    tokenizer: object
    image_cfg: object  # :class:`ng_core.models.image_processing.ImageConfig`
    lock: object  # re-entrant lock: one forward/generate at a time on a shared model
    caches: ModelCaches

    # ------------------------------------------------------------------ shape and places
    @property
    @abc.abstractmethod
    def n_layers(self) -> int: ...

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def ffn_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def lm(self) -> nn.Module:
        """The language model's decoder stack (``.layers``, ``.embed_tokens``)."""

    @property
    @abc.abstractmethod
    def input_device(self) -> torch.device: ...

    @abc.abstractmethod
    def layer_module(self, layer: int) -> nn.Module: ...

    @abc.abstractmethod
    def down_proj(self, layer: int) -> nn.Linear: ...

    def check_layer(self, layer: int) -> None:
        """Raise a clear ``ValueError`` when ``layer`` is not a decoder layer of this model."""
        if not 0 <= int(layer) < self.n_layers:
            raise ValueError(f"layer {layer} is out of range: this model has layers 0..{self.n_layers - 1}")

    def hook(self, point: str, fn: Callable, label: str = "") -> HookSpec:
        """A :class:`HookSpec` on the stable place ``point`` (see :data:`HOOK_POINTS`), e.g.
        ``adapter.hook("blocks.15.hook_resid_post", fn)``."""
        m = _POINT.fullmatch(point)
        if m is None:
            raise ValueError(f"unknown hook point {point!r}; known: {', '.join(HOOK_POINTS)}")
        layer, where = int(m.group(1)), m.group(2)
        module = self.down_proj(layer) if where.startswith("mlp.") else self.layer_module(layer)
        kind = HOOK_POINTS["blocks.{L}." + where][0]
        return HookSpec(module, fn, kind, label or point, point=point)

    # ------------------------------------------------------------------ identity
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short hash of the config and weights: run bundles record it and refuse another model's."""

    @abc.abstractmethod
    def n_parameters(self) -> int: ...

    # ------------------------------------------------------------------ images
    @abc.abstractmethod
    def encode_image(self, image) -> torch.Tensor:
        """Projected image features ``[N_img, d]``, cached in ``caches.features``."""

    @abc.abstractmethod
    def encode_image_uncached(self, image) -> torch.Tensor: ...

    @property
    @abc.abstractmethod
    def n_image_tokens(self) -> int: ...

    @property
    def reads(self) -> bool:
        """True when this model reads the text in its images (OCR lines in the prompt)."""
        return False

    def read_image(self, image) -> str | None:
        """The reading block for ``image`` (cached in ``caches.readings``), or None."""
        return None

    def read_image_uncached(self, image) -> str | None:
        return None

    def warm_reader(self) -> None:
        """Build the reader now, on the calling thread (nothing to build for a model that does not read)."""

    @property
    def reading_id(self) -> str | None:
        """A short hash of what a reading depends on besides the pixels (None: this model does not read)."""
        return None

    def remember_reading(self, image, text: str | None) -> None:
        """Put a reading made before of ``image`` (a dataset file) into the shared cache."""

    @staticmethod
    def content_key(img) -> str:
        """A key for an opened image's full-resolution pixels."""
        raise NotImplementedError

    # ------------------------------------------------------------------ sequences and passes
    @abc.abstractmethod
    def build(self, prompt: str, *, subject: str | None = None, answer: str | None = None,
              has_image: bool = True) -> Sequence: ...

    @abc.abstractmethod
    def embed(self, seq: Sequence, features: torch.Tensor | None) -> torch.Tensor: ...

    @abc.abstractmethod
    def collate(self, seqs: list[Sequence], features: list, padding: str = "right") -> Batch: ...

    @abc.abstractmethod
    def collate_embeds(self, embs: list, seqs: list, padding: str = "right") -> Batch: ...

    @abc.abstractmethod
    def hooked(self, specs: list[HookSpec]):
        """A context manager that attaches ``specs`` and always removes them."""

    @abc.abstractmethod
    def forward(self, batch: Batch, cache=None, use_cache: bool = False): ...

    @abc.abstractmethod
    def logits(self, hidden: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def hidden_entering(self, layer: int, batch: Batch) -> torch.Tensor: ...

    @abc.abstractmethod
    def run_layers(self, hidden: torch.Tensor, start: int, batch: Batch, cache=None,
                   keep_inputs: list | None = None) -> torch.Tensor: ...

    @abc.abstractmethod
    def generate(self, items: list, **kw) -> list: ...

    # ------------------------------------------------------------------ key/value caches
    # The method layer keeps prompt prefixes in a cache; it touches caches only through these.
    @abc.abstractmethod
    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings of ``ids`` (any shape), as the decoder's first layer receives them."""

    @abc.abstractmethod
    def new_cache(self):
        """An empty key/value cache for :meth:`forward` and :meth:`run_layers`."""

    @abc.abstractmethod
    def cache_snapshot(self, cache) -> list:
        """What ``cache`` holds now (its tensors, not copies)."""

    @abc.abstractmethod
    def cache_restore(self, cache, snap: list, clone: bool = False) -> None:
        """Put a :meth:`cache_snapshot` back, dropping what was added since (and its autograd history)."""

    @abc.abstractmethod
    def cache_from_snapshot(self, snap: list):
        """A fresh cache holding copies of ``snap``."""

    @abc.abstractmethod
    def cache_select_rows(self, cache, idx: torch.Tensor) -> None:
        """Keep rows ``idx`` of ``cache`` (rows may repeat: one image's prefix copied to each of its rows)."""

    @abc.abstractmethod
    def cache_expand_rows(self, cache, n: int, start: int = 0) -> None:
        """A one-row cache seen by ``n`` rows (a view, autograd history kept), from layer ``start`` on."""
