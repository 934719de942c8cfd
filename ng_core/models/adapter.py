"""The model interface the rest of the core uses, and the token-sequence types it builds.

Everything position-related is computed from token segments and character offsets,
never from hard-coded offsets, so the subject position is exact for any tokenizer
and any number of image tokens.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn


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
    """

    embeds: torch.Tensor  # [B, T, d]
    attention_mask: torch.Tensor  # [B, T] long
    position_ids: torch.Tensor  # [B, T] long
    offsets: torch.Tensor  # [B] long
    seqs: list

    @property
    def size(self) -> int:
        return self.embeds.shape[0]


class ModelAdapter(abc.ABC):
    """Abstract places (layer output, ``down_proj``, subject token) mapped to one model family."""

    model_id: str
    family: str

    @property
    @abc.abstractmethod
    def n_layers(self) -> int: ...

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def ffn_size(self) -> int: ...

    @abc.abstractmethod
    def layer_module(self, layer: int) -> nn.Module: ...

    @abc.abstractmethod
    def down_proj(self, layer: int) -> nn.Linear: ...

    @abc.abstractmethod
    def encode_image(self, image) -> torch.Tensor: ...

    @abc.abstractmethod
    def build(self, prompt: str, *, subject: str | None = None, answer: str | None = None,
              has_image: bool = True) -> Sequence: ...

    @abc.abstractmethod
    def collate(self, seqs: list[Sequence], features: list, padding: str = "right") -> Batch: ...

    @abc.abstractmethod
    def generate(self, items: list, **kw) -> list: ...
