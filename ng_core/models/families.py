"""The vision-language families the generic adapter serves, each described as data.

A :class:`FamilySpec` names where a family keeps its decoder layers, each layer's ``down_proj``, the final
norm and the head; how its images enter (one placeholder token expanded to the image's tokens, with the
family's start/end markers around it); how its positions work (``1d`` token indices, or Qwen's 3-D
``mrope`` computed by the model's own ``get_rope_index``); which token types its forward needs; and how
its pixels are prepared (the project's own resize/crop/normalise for LLaVA-1.5, else the family's image
processor on the resized square). Everything else lives once, in :class:`ng_core.models.hf_adapter.HFVLMAdapter`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FamilySpec:
    model_type: str  # transformers' config.model_type
    name: str  # how people call it
    model_class: str  # the transformers class (image-text-to-text)
    lm_path: str = "model.language_model"  # the decoder stack, from the top model
    layers_attr: str = "layers"
    down_proj_path: str = "mlp.down_proj"  # inside one decoder layer
    norm_attr: str = "norm"
    head_path: str = "lm_head"
    image_token: str = "<image>"  # the placeholder that receives the image's features
    image_wrap: tuple = ("", "")  # family markers written around the placeholder in the prompt
    image_newline: str = "\n"  # what follows the image block before the question
    positions: str = "1d"  # "1d" or "mrope"
    token_types: str | None = None  # forward kwarg carrying 1 at image tokens ("token_type_ids"), or None
    pixels: str = "processor"  # "project": the project's CLIP-style preprocessing; "processor": the family's
    features: str = "pooled"  # how get_image_features' output becomes [N, d] ("pooled")
    image_kwargs: tuple = ()  # processor outputs passed to get_image_features besides pixel_values
    deepstack: bool = False  # visual features also added inside the first decoder layers (Qwen3-VL)
    image_rows: tuple = ()  # (row break, end) tokens of an image laid out in rows (Pixtral), else ()
    # (what the family's own chat template writes for an image, what its processor puts there instead) when the
    # two differ (list-content templates): the placeholder is then replaced before tokenizing
    template_image: tuple = ()
    # What has been verified for this family: {"loads", "tiny", "real"} (README's table reads it).
    verified: frozenset = field(default_factory=frozenset)


#: Loads from a checkpoint folder and passes the test matrix on its tiny random build (tests/test_families.py);
#: "real" is added only where the method has really run on the family's real weights.
_TINY = frozenset({"loads", "tiny"})

FAMILIES: dict[str, FamilySpec] = {s.model_type: s for s in (
    FamilySpec("llava", "LLaVA-1.5", "LlavaForConditionalGeneration", pixels="project",
               verified=frozenset({"loads", "tiny", "real"})),
    FamilySpec("llava_next", "LLaVA-NeXT", "LlavaNextForConditionalGeneration",
               image_kwargs=("image_sizes",), verified=_TINY),
    FamilySpec("llava_onevision", "LLaVA-OneVision", "LlavaOnevisionForConditionalGeneration",
               image_kwargs=("image_sizes",), verified=_TINY),
    FamilySpec("qwen2_vl", "Qwen2-VL", "Qwen2VLForConditionalGeneration", image_token="<|image_pad|>",
               image_wrap=("<|vision_start|>", "<|vision_end|>"), positions="mrope",
               image_kwargs=("image_grid_thw",), verified=_TINY),
    FamilySpec("qwen2_5_vl", "Qwen2.5-VL", "Qwen2_5_VLForConditionalGeneration", image_token="<|image_pad|>",
               image_wrap=("<|vision_start|>", "<|vision_end|>"), positions="mrope",
               image_kwargs=("image_grid_thw",), verified=_TINY),
    FamilySpec("qwen3_vl", "Qwen3-VL (dense)", "Qwen3VLForConditionalGeneration", image_token="<|image_pad|>",
               image_wrap=("<|vision_start|>", "<|vision_end|>"), positions="mrope",
               image_kwargs=("image_grid_thw",), deepstack=True, verified=_TINY),
    FamilySpec("gemma3", "Gemma 3", "Gemma3ForConditionalGeneration", image_token="<image_soft_token>",
               image_wrap=("<start_of_image>", "<end_of_image>"), image_newline="\n\n",
               template_image=("<start_of_image>", "\n\n<start_of_image><image_soft_token><end_of_image>\n\n"),
               token_types="token_type_ids", verified=_TINY),
    FamilySpec("mistral3", "Mistral3", "Mistral3ForConditionalGeneration", image_token="[IMG]",
               image_rows=("[IMG_BREAK]", "[IMG_END]"), image_kwargs=("image_sizes",), verified=_TINY),
    FamilySpec("internvl", "InternVL3", "InternVLForConditionalGeneration", image_token="<IMG_CONTEXT>",
               image_wrap=("<img>", "</img>"), template_image=("<IMG_CONTEXT>", "<img><IMG_CONTEXT></img>"),
               verified=_TINY),
    FamilySpec("smolvlm", "SmolVLM", "SmolVLMForConditionalGeneration", lm_path="model.text_model",
               image_wrap=("<fake_token_around_image><global-img>", "<fake_token_around_image>"),
               template_image=("<image>", "<fake_token_around_image><global-img><image><fake_token_around_image>"),
               image_kwargs=("pixel_attention_mask",), verified=_TINY),
    FamilySpec("idefics3", "Idefics3", "Idefics3ForConditionalGeneration", lm_path="model.text_model",
               image_wrap=("<fake_token_around_image><global-img>", "<fake_token_around_image>"),
               template_image=("<image>", "<fake_token_around_image><global-img><image><fake_token_around_image>"),
               image_kwargs=("pixel_attention_mask",), verified=_TINY),
)}


def family_of(model_type: str) -> FamilySpec:
    """The spec for ``model_type``, or a ``KeyError`` naming the families served."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise KeyError(f"the model type {model_type!r} is not a supported vision-language family; supported: "
                       f"{', '.join(FAMILIES)}") from None


def resolve(root, path: str):
    """``root.a.b.c`` for ``path`` = ``"a.b.c"`` (integers index lists)."""
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj
