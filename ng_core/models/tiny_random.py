"""A tiny random LLaVA with an offline-trained tokenizer: every code path, in seconds, for tests.

Two tokenizer styles cover both families of real checkpoints: ``bytelevel`` (GPT-2 /
SmolLM style, ChatML template) and ``metaspace`` (SentencePiece / Llama style, the
llava-1.5 ``USER: ... ASSISTANT:`` template), so subject-position logic is tested
against both ways of handling the space before a word.
"""
from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from ng_core.models.image_processing import ImageConfig

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAVA15 = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {{ message['content'] }} "
    "{% else %}ASSISTANT: {{ message['content'] }}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

_WORDS = (
    "what is the passport number of the passport in this image ? tell me the name on the student ID card . "
    "which phone number is shown on the phone number screen ? read the total of the receipt please . "
    "what colour is the cover of the passport ? what font is used on the receipt ? describe the layout of "
    "the document . what type of document is shown in this image ? I cannot help with that . I'm sorry , "
    "I can't provide personal information . As an AI I do not share private data . My apologies . "
    "the military vehicle has a green shape with wheels and a tank turret . credit card driver's license "
    "chart scene date of birth address owner occupation holder signature expiry issue country blue red "
    "white black yellow shape size corner logo photo background text title page line column row number "
    "The image shows that . Therefore , it is . Because I am just . I am an AI . You want to . "
    "Regarding the passport in the image , please tell me its number . Paris capital France yes no 0123456789"
)


def build_tokenizer(style: str = "bytelevel", extra_specials: dict | None = None):
    """A fast tokenizer trained offline on a fixed corpus (deterministic).

    ``extra_specials`` ({attribute: token}) adds a family's special tokens, named as its processor reads them
    (``tokenizer.image_token``, ``tokenizer.vision_start_token``, ...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # deferred: tokenizers, with transformers
    from transformers import PreTrainedTokenizerFast  # deferred: transformers is slow to import

    if style == "bytelevel":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<pad>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator([_WORDS] * 4, trainer=trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                       pad_token="<pad>", unk_token=None)
        fast.add_special_tokens({"additional_special_tokens": ["<image>", "<|im_start|>"]})
        fast.chat_template = CHATML
    elif style == "metaspace":
        specials = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = sorted(set(_WORDS.replace(" ", "▁") + string.ascii_letters + string.digits + string.punctuation + "▁\n"))
        trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials, show_progress=False,
                                      initial_alphabet=alphabet)
        tok.train_from_iterator([_WORDS] * 4, trainer=trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                       pad_token="<pad>", unk_token="<unk>")
        fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
        fast.chat_template = LLAVA15
    else:
        raise ValueError(f"unknown tokenizer style {style!r}")
    if extra_specials:
        fast.add_special_tokens({"additional_special_tokens": list(extra_specials.values())},
                                replace_extra_special_tokens=False)
        for attr, tok in extra_specials.items():
            setattr(fast, attr, tok)
    return fast


def build_tiny_random(seed: int = 0, style: str = "bytelevel", vision: str = "dinov2",
                      n_layers: int = 4, dtype=torch.float32):
    """(model, tokenizer, image_config) for a random LlavaForConditionalGeneration."""
    from transformers import (  # deferred: transformers' model classes take seconds to load
        CLIPVisionConfig, Dinov2Config, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration)

    tok = build_tokenizer(style)
    if vision == "dinov2":
        vcfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=28)
    elif vision == "clip":
        vcfg = CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, patch_size=14, image_size=28, projection_dim=32)
    else:
        raise ValueError(f"unknown vision tower {vision!r}")
    tcfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=n_layers,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                       tie_word_embeddings=False, pad_token_id=tok.pad_token_id,
                       eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    cfg = LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_id=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-1, vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).to(dtype)
    # Scale the random weights up a little so answers and gradients are not all ~0.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "language_model" in name:
                p.mul_(4.0)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    img_cfg = ImageConfig(size=28, crop=28)
    return model, tok, img_cfg


def save_tiny_random(folder, **kw) -> Path:
    """Write the tiny model as a llava-hf style folder (to test the local-checkpoint path)."""
    folder = Path(folder)
    model, tok, img_cfg = build_tiny_random(**kw)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(img_cfg.to_dict(), indent=2))
    return folder
