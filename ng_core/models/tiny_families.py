"""Tiny random builds of every supported family: ``tiny-random:<model_type>``, offline, in a second.

Each uses the family's own config and model classes with small sizes, the project's offline-trained
tokenizer carrying the family's special tokens, the family's PIL image processor and a chat template.
They exist to run every code path of the generic adapter on each family (positions, image tokens, layer
replay, caches), not to answer anything sensible.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ng_core.models.image_processing import ImageConfig
from ng_core.models.tiny_random import build_tokenizer, build_tiny_random, save_tiny_random

_TEXT = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=512, tie_word_embeddings=False)
_PINPOINTS = [[28, 28], [28, 56], [56, 28], [56, 56]]
_QWEN_SPECIALS = {"vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>",
                  "image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}


def _text(tok, n_layers: int, **extra) -> dict:
    return dict(_TEXT, vocab_size=len(tok), num_hidden_layers=n_layers, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, **extra)


def _llava_next(tok, n_layers):
    # deferred: this family's transformers classes, loaded only when it is built
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    v = CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         patch_size=14, image_size=28, projection_dim=32)
    cfg = LlavaNextConfig(vision_config=v, text_config=LlamaConfig(**_text(tok, n_layers)),
                          image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=_PINPOINTS,
                          vision_feature_layer=-1)
    proc = LlavaNextImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                      image_grid_pinpoints=_PINPOINTS)
    return LlavaNextForConditionalGeneration, cfg, proc, 56


def _llava_onevision(tok, n_layers):
    # deferred: this family's transformers classes, loaded only when it is built
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

    v = SiglipVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           patch_size=14, image_size=28)
    cfg = LlavaOnevisionConfig(vision_config=v, text_config=Qwen2Config(**_text(tok, n_layers)),
                               image_token_index=tok.convert_tokens_to_ids("<image>"),
                               image_grid_pinpoints=_PINPOINTS, vision_feature_layer=-1)
    proc = LlavaOnevisionImageProcessorPil(size={"height": 28, "width": 28}, image_grid_pinpoints=_PINPOINTS)
    return LlavaOnevisionForConditionalGeneration, cfg, proc, 56


def _qwen_vl(tok, n_layers, version: str):
    # deferred: this family's transformers classes, loaded only when it is built
    import transformers
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    text = _text(tok, n_layers, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    patch, side = 14, 84  # 6x6 patches, merged 2x2: 9 image tokens on a 3x3 grid
    if version == "qwen3_vl":  # dense Qwen3-VL: DeepStack features from both vision blocks, interleaved M-RoPE
        cls, ccls = transformers.Qwen3VLForConditionalGeneration, transformers.Qwen3VLConfig
        text = _text(tok, n_layers, head_dim=16, rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3],
                                                               "mrope_interleaved": True})
        vision = dict(depth=2, hidden_size=32, out_hidden_size=64, num_heads=2, intermediate_size=64, patch_size=16,
                      spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[0, 1],
                      num_position_embeddings=64)
        patch, side = 16, 96
    elif version == "qwen2_vl":
        cls, ccls = transformers.Qwen2VLForConditionalGeneration, transformers.Qwen2VLConfig
        vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)
    else:
        cls, ccls = transformers.Qwen2_5_VLForConditionalGeneration, transformers.Qwen2_5_VLConfig
        vision = dict(depth=1, hidden_size=32, out_hidden_size=64, num_heads=2, intermediate_size=64, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0], window_size=56)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in _QWEN_SPECIALS.items()}
    cfg = ccls(text_config=text, vision_config=vision, image_token_id=ids["image_token"],
               video_token_id=ids["video_token"], vision_start_token_id=ids["vision_start_token"],
               vision_end_token_id=ids["vision_end_token"])
    proc = Qwen2VLImageProcessorPil(min_pixels=side * side, max_pixels=side * side, patch_size=patch, merge_size=2,
                                    temporal_patch_size=2)
    return cls, cfg, proc, side


_GEMMA_SPECIALS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
                   "start_of_turn_token": "<start_of_turn>", "end_of_turn_token": "<end_of_turn>"}
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' "
    "else message['role']) + '\n' + message['content'] + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def _gemma3(tok, n_layers):
    # deferred: this family's transformers classes, loaded only when it is built
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tok.chat_template = GEMMA_TEMPLATE
    # Sliding-window layers alternate with full ones, as in Gemma 3; the window (1024 on the 4B..27B models)
    # spans every test sequence, padding included (see HFVLMAdapter.check_window).
    text = _text(tok, n_layers, head_dim=16, sliding_window=128, query_pre_attn_scalar=16,
                 layer_types=["sliding_attention", "full_attention"] * (n_layers // 2) + ["sliding_attention"] * (n_layers % 2))
    v = SiglipVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           patch_size=14, image_size=56)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in _GEMMA_SPECIALS.items()}
    cfg = Gemma3Config(text_config=Gemma3TextConfig(**text), vision_config=v, mm_tokens_per_image=4,
                       boi_token_index=ids["boi_token"], eoi_token_index=ids["eoi_token"],
                       image_token_index=ids["image_token"])
    proc = Gemma3ImageProcessorPil(size={"height": 56, "width": 56})
    return Gemma3ForConditionalGeneration, cfg, proc, 56


_INTERNVL_SPECIALS = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>"}
_IDEFICS_SPECIALS = {"fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
                     "end_of_utterance_token": "<end_of_utterance>"}


def _internvl(tok, n_layers):
    # deferred: this family's transformers classes, loaded only when it is built
    from transformers import InternVLConfig, InternVLForConditionalGeneration, Qwen2Config
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    v = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=[14, 14],
             image_size=[56, 56])
    cfg = InternVLConfig(text_config=Qwen2Config(**_text(tok, n_layers)).to_dict(), vision_config=v,
                         image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5,
                         image_seq_length=4)
    proc = GotOcr2ImageProcessorPil(size={"height": 56, "width": 56}, crop_to_patches=False)
    return InternVLForConditionalGeneration, cfg, proc, 56


def _idefics(tok, n_layers, family: str):
    # deferred: this family's transformers classes, loaded only when it is built
    import transformers
    from transformers import LlamaConfig

    if family == "smolvlm":
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil as P
        cls, ccls = transformers.SmolVLMForConditionalGeneration, transformers.SmolVLMConfig
    else:
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil as P
        cls, ccls = transformers.Idefics3ForConditionalGeneration, transformers.Idefics3Config
    v = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14,
             image_size=56)
    cfg = ccls(text_config=LlamaConfig(**_text(tok, n_layers)).to_dict(), vision_config=v, scale_factor=2,
               image_token_id=tok.convert_tokens_to_ids("<image>"))
    proc = P(do_image_splitting=False, size={"longest_edge": 56}, max_image_size={"longest_edge": 56})
    return cls, cfg, proc, 56


_MISTRAL_SPECIALS = {"image_token": "[IMG]", "image_break_token": "[IMG_BREAK]", "image_end_token": "[IMG_END]"}


def _mistral3(tok, n_layers):
    # deferred: this family's transformers classes, loaded only when it is built
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, MistralConfig, PixtralVisionConfig
    from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil

    v = PixtralVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            patch_size=16, image_size=96, head_dim=16)
    cfg = Mistral3Config(vision_config=v, text_config=MistralConfig(**_text(tok, n_layers, head_dim=16)),
                         image_token_index=tok.convert_tokens_to_ids("[IMG]"), spatial_merge_size=2,
                         vision_feature_layer=-1)
    proc = PixtralImageProcessorPil(size={"longest_edge": 96}, patch_size=16)
    return Mistral3ForConditionalGeneration, cfg, proc, 96  # 6x6 patches, merged 2x2: 3 rows of 3 image tokens


_BUILDERS = {
    "llava_next": (_llava_next, None),
    "llava_onevision": (_llava_onevision, None),
    "qwen2_vl": (lambda t, n: _qwen_vl(t, n, "qwen2_vl"), _QWEN_SPECIALS),
    "qwen2_5_vl": (lambda t, n: _qwen_vl(t, n, "qwen2_5_vl"), _QWEN_SPECIALS),
    "qwen3_vl": (lambda t, n: _qwen_vl(t, n, "qwen3_vl"), _QWEN_SPECIALS),
    "gemma3": (_gemma3, _GEMMA_SPECIALS),
    "internvl": (_internvl, _INTERNVL_SPECIALS),
    "mistral3": (_mistral3, _MISTRAL_SPECIALS),
    "smolvlm": (lambda t, n: _idefics(t, n, "smolvlm"), _IDEFICS_SPECIALS),
    "idefics3": (lambda t, n: _idefics(t, n, "idefics3"), _IDEFICS_SPECIALS),
}
#: The families ``tiny-random:<model_type>`` builds.
TINY_FAMILIES = ("llava",) + tuple(_BUILDERS)


def build_tiny_family(model_type: str, seed: int = 0, n_layers: int = 4, dtype=torch.float32):
    """(model, tokenizer, image_config, image_processor) for a random ``model_type`` model (``llava``: no processor:
    the project's own preprocessing, as for every LLaVA-1.5 checkpoint)."""
    if model_type == "llava":
        model, tok, img_cfg = build_tiny_random(seed=seed, n_layers=n_layers, dtype=dtype)
        return model, tok, img_cfg, None
    if model_type not in _BUILDERS:
        raise ValueError(f"no tiny random build for {model_type!r}; built: {', '.join(TINY_FAMILIES)}")
    make, specials = _BUILDERS[model_type]
    tok = build_tokenizer("bytelevel", specials)
    cls, cfg, proc, side = make(tok, n_layers)
    torch.manual_seed(seed)
    model = cls(cfg).to(dtype)
    with torch.no_grad():  # scale the random decoder weights up a little so answers and gradients are not all ~0
        for name, p in model.named_parameters():
            if p.dim() == 2 and "language_model" in name:
                p.mul_(4.0)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok, ImageConfig(size=side, crop=side), proc


def save_tiny_family(folder, model_type: str, **kw):
    """Write the tiny ``model_type`` build as a checkpoint folder (config, weights, tokenizer with its chat
    template, image processor): what ``--model PATH`` loads."""
    folder = Path(folder)
    if model_type == "llava":
        return save_tiny_random(folder, **kw)
    model, tok, _, proc = build_tiny_family(model_type, **kw)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
