"""The LLaVA model of ``ng-mini-llava`` from its two converted halves: the ``<image>`` token added to the
language model's tokenizer and embeddings, the ``LlavaForConditionalGeneration`` that holds both towers, and its
greedy generation settings.

Why a module of its own: :mod:`ng_core.models.mini.assemble` decides what to build and whether the cache is
current, and converts the shipped pieces; this is the model-shaped part, which needs only torch and transformers.
"""
from __future__ import annotations

import contextlib

import torch

from ng_core.errors import ModelLoadError

IMAGE_TOKEN = "<image>"
IM_END_TOKEN = "<|im_end|>"


def add_image_token(lm, tokenizer) -> tuple[int, int]:
    """``<image>`` as an additional special token, with an embedding row of its own; (its id, ``<|im_end|>``'s)."""
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    im_end_id = tokenizer.convert_tokens_to_ids(IM_END_TOKEN)
    if len(tokenizer(IMAGE_TOKEN, add_special_tokens=False).input_ids) != 1:
        raise ModelLoadError("internal error: <image> is not a single token")

    old_rows = lm.get_input_embeddings().weight.shape[0]
    lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():  # deterministic: new rows = mean embedding (the <image> row is replaced by features)
        emb = lm.get_input_embeddings().weight
        emb[old_rows:] = emb[:old_rows].mean(dim=0, keepdim=True)
    return image_token_id, im_end_id


def llava_model(vision, lm, settings: dict, image_token_id: int, im_end_id: int):
    """A ``LlavaForConditionalGeneration`` holding the vision tower's and the language model's weights."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration  # deferred: transformers is slow to import

    text_config = lm.config
    text_config.pad_token_id = im_end_id
    config = LlavaConfig(
        vision_config=vision.config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_id=image_token_id,
        image_seq_length=settings["num_visual_tokens"],
        projector_hidden_act=settings["projector_hidden_act"],
        vision_feature_select_strategy="default",
        vision_feature_layer=settings["vision_feature_layer"],
        multimodal_projector_bias=True,
        tie_word_embeddings=True,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    try:
        from transformers.initialization import no_init_weights  # deferred: transformers; absent in older versions
    except ImportError:  # pragma: no cover - older transformers
        no_init_weights = contextlib.nullcontext
    with no_init_weights():
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(vision.state_dict(), strict=True)
    model.model.language_model.load_state_dict(lm.model.state_dict(), strict=True)
    return model


def generation_config(bos_token_id: int | None, image_token_id: int, im_end_id: int):
    """Greedy, stops at the end of the turn, never generates ``<image>``."""
    from transformers import GenerationConfig  # deferred: transformers is slow to import

    return GenerationConfig(
        bos_token_id=bos_token_id,
        eos_token_id=im_end_id,
        pad_token_id=im_end_id,
        do_sample=False,
        max_new_tokens=64,
        suppress_tokens=[image_token_id],
        bad_words_ids=[[image_token_id]],
    )


__all__ = ["IMAGE_TOKEN", "IM_END_TOKEN", "add_image_token", "generation_config", "llava_model"]
