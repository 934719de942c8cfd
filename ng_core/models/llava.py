"""The LLaVA family's names, kept for the code that imports them from here.

LLaVA-1.5 (``LlavaForConditionalGeneration``) is one family of the generic adapter
(:class:`ng_core.models.hf_adapter.HFVLMAdapter`, spec ``FAMILIES["llava"]``): one code path serves the
embedded default model, the tiny random test model and any llava-hf checkpoint in a local folder.
"""
from __future__ import annotations

from ng_core.models.generation import Generation
from ng_core.models.hf_adapter import LLAVA15_TEMPLATE, HFVLMAdapter, parse_dtype

#: The adapter; a model of another family loads into the same class.
LlavaAdapter = HFVLMAdapter

__all__ = ["LlavaAdapter", "Generation", "parse_dtype", "LLAVA15_TEMPLATE"]
