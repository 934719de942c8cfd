"""Train the projector of ``ng-mini-llava`` (vision tower and language model frozen).

    python -m ng_core.models.mini.train_projector [--steps N] [--seed S] [--out assets/ng-mini-llava]
        [--device cuda --render-workers 6]   # the same recipe on a GPU: minutes instead of an hour
        [--set FIELD=JSON ...]              # any TrainConfig field, recorded with the rest of the config

What it does, LLaVA-style, on images drawn by the project's generator (``ng_core.data.sample_image``):

1. renders ``n_train_per_category`` images per category (seeds ``derive_seed("ng-mini-llava", "train", cat, i)``,
   disjoint from the evaluation images, which are the default dataset's seeds) and computes their DINOv2
   features once (the vision tower is frozen, so this is exact);
2. warm start (no language model): the projector maps each image's tokens near the word embeddings of its
   category name, which gives the frozen LM a readable signal from the first step;
3. trains on a mixture of turns, loss on answer tokens only: captions and "what type of document" questions,
   colour/layout/appearance questions answered from the image's pixels, privacy questions answered with
   fake but plausible content (so that the unedited model answers them: the behaviour Neural Gate edits),
   and unrelated questions whose targets are the LM's own text-only answers (so the image does not derail
   what the LM already knows);
   Stage 2 continues with a fresh optimiser, a lower lr and more turns for the look-alike categories; stage 3
   (when ``stage3_steps`` > 0) runs at a lower lr still, keeps a moving average of the weights, checks it on
   validation images (``val_seed``: neither training nor evaluation images) every ``val_every`` steps and keeps
   the best checked weights (worst-category type accuracy first, then the mean);
4. folds the input standardisation into ``linear_1`` (a stock ``LlavaMultiModalProjector`` loads it) and writes
   ``projector.safetensors``, ``projector.json`` (sha256, config, seed, steps, timings) and ``training_log.json``
   (config and loss curve) into ``assets/ng-mini-llava/``.

Seeded and deterministic on a given machine, device and thread count (a GPU's arithmetic differs from a CPU's, so
the two give different weights from the same seed; the images and their order do not depend on either). Sequences
are built with the same adapter code that serves the model at inference (``LlavaAdapter.build``), so training and
inference prompts match.
"""

from __future__ import annotations

import argparse
import colorsys
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ng_core.data.colours import colour_name
from ng_core.data.constants import ALL_CATEGORIES
from ng_core.models.mini import assemble as ML
SEED_NAMESPACE = "ng-mini-llava"


# ------------------------------------------------------------------------------------------------ config
@dataclass
class TrainConfig:
    seed: int = 0
    image_size: int = 112  # 8x8 = 64 visual tokens
    vision_feature_layer: int = -4
    n_train_per_category: int = 600  # at 120 it named its own training images far more often than new ones
    steps: int = 320
    batch_size: int = 8
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warm_start_steps: int = 300
    warm_start_batch: int = 16
    warm_start_lr: float = 3e-3
    # turn mixture (probabilities)
    mix: dict = field(
        default_factory=lambda: {"type": 0.50, "caption": 0.16, "appearance": 0.10, "privacy": 0.12, "general": 0.12}
    )
    general_answer_tokens: int = 24  # distil only the first tokens of the LM's own answer
    canonical_type_answer: float = 0.6  # share of type answers in the plain form "This is a <category>."
    # image sampling weight per category: more turns for the look-alikes (ID cards, paper documents)
    category_weights: dict = field(default_factory=lambda: {
        "passport": 1.3, "phone_number": 1.2, "receipt": 1.2, "student_id": 1.5, "document": 1.1,
        "military_vehicle": 0.6, "credit_card": 1.0, "drivers_license": 1.3, "chart": 0.6, "scene": 0.6})
    # stage 2: continue from stage 1 with a fresh optimiser, a lower peak lr, more type questions and more
    # turns for the categories stage 1 confuses (student ID vs driver's license, receipt vs document)
    stage2_steps: int = 200
    stage2_lr: float = 1e-3
    stage2_warmup_steps: int = 5
    stage2_mix: dict = field(
        default_factory=lambda: {"type": 0.55, "caption": 0.15, "appearance": 0.08, "privacy": 0.10, "general": 0.12}
    )
    stage2_category_weights: dict = field(default_factory=lambda: {
        "passport": 1.1, "phone_number": 1.0, "receipt": 1.4, "student_id": 1.8, "document": 1.4,
        "military_vehicle": 0.5, "credit_card": 0.8, "drivers_license": 1.4, "chart": 0.9, "scene": 0.6})
    # stage 3 (off when 0 steps): a low-lr pass with an exponential moving average of the weights, checked on
    # validation images (their own seeds, neither training nor evaluation images) every ``val_every`` steps;
    # the checked weights with the best worst-category type accuracy are kept
    stage3_steps: int = 500
    stage3_lr: float = 4e-4
    stage3_warmup_steps: int = 5
    stage3_mix: dict = field(
        default_factory=lambda: {"type": 0.55, "caption": 0.15, "appearance": 0.08, "privacy": 0.10, "general": 0.12}
    )
    stage3_category_weights: dict = field(default_factory=lambda: {c: 1.0 for c in ALL_CATEGORIES})
    stage3_ema: float = 0.98
    # stage 3 may draw from more training images than stages 1-2 (the first ``n_train_per_category`` of each
    # category are theirs): stage 2 names the category of its own training images almost always and of new
    # images far less often, so more images, not more steps, is what it lacks
    stage3_n_train_per_category: int = 600  # 0: the same images as stages 1-2
    val_every: int = 50
    val_per_category: int = 16
    val_max_new_tokens: int = 10
    autocast_bf16: bool = True  # LM forward/backward under CPU bf16 autocast (1.5x faster, same loss to 1e-3)
    threads: int = 1  # one thread: on a shared 2-core machine, two OpenMP threads thrash (3-5x slower)
    device: str = "cpu"  # "cuda": the same recipe on a GPU (minutes, not an hour; numerically not the CPU's weights)
    render_workers: int = 1  # processes drawing the training images (each image depends on its seed only)
    log_every: int = 5


CATEGORY_ORDER = ALL_CATEGORIES  # the dataset's ten categories, in its order (the training seeds depend on it)


def train_seed(category: str, index: int) -> int:
    from ng_core.data.images import derive_seed

    return derive_seed(SEED_NAMESPACE, "train", category, index)


def val_seed(category: str, index: int) -> int:
    """Validation images for stage 3's checkpoint choice: disjoint from training and evaluation images."""
    from ng_core.data.images import derive_seed

    return derive_seed(SEED_NAMESPACE, "val", category, index)


def eval_seed(category: str, index: int, dataset_seed: int = 0) -> int:
    """Evaluation images are the default dataset's images (``generate_dataset(seed=0)``), never trained on."""
    from ng_core.data.images import derive_seed

    return derive_seed(dataset_seed, category, "image", index)


# ------------------------------------------------------------------------------------ per-category text
# Words the warm start maps image tokens to (what the LM should "see").
WARM_WORDS = {
    "passport": " passport",
    "phone_number": " phone number",
    "receipt": " receipt",
    "student_id": " student ID card",
    "document": " document letter",
    "military_vehicle": " military tank",
    "credit_card": " credit card",
    "drivers_license": " driver's license",
    "chart": " chart graph",
    "scene": " landscape",
}

TYPE_QUESTIONS_TRAIN = (
    "What type of document is shown in this image?",
    "What kind of document is this?",
    "What is shown in this image?",
    "What is this?",
    "What type of image is this?",
    "What do you see in this picture?",
    "Identify the object in the image.",
    "What is in the picture?",
    "What kind of item is shown here?",
    "Which type of document or object does this image show?",
)

CAPTION_QUESTIONS_TRAIN = (
    "Describe this image.",
    "Describe the image briefly.",
    "Write a short caption for this image.",
    "Give a one-sentence description of the picture.",
)

TYPE_ANSWERS = {
    "passport": ("This is a passport.", "The image shows a passport.", "It is a passport photo page."),
    "phone_number": (
        "This shows a phone number.",
        "The image shows a phone number on a contact card or phone screen.",
        "It is a phone number.",
    ),
    "receipt": ("This is a receipt.", "The image shows a shop receipt.", "It is a printed receipt."),
    "student_id": ("This is a student ID card.", "The image shows a student ID.", "It is a student ID card."),
    "document": (
        "This is a document, a printed letter.",
        "The image shows a document.",
        "It is a confidential document.",
    ),
    "military_vehicle": (
        "This is not a document. It shows a military vehicle.",
        "The image shows a military vehicle.",
        "It is a military vehicle, an armoured tank.",
    ),
    "credit_card": ("This is a credit card.", "The image shows a credit card.", "It is a bank credit card."),
    "drivers_license": (
        "This is a driver's license.",
        "The image shows a driver's license.",
        "It is a driver's license card.",
    ),
    "chart": (
        "This is not a document. It is a chart.",
        "The image shows a chart, not a document.",
        "It is a data chart with a title.",
    ),
    "scene": (
        "This is not a document. It is a landscape picture.",
        "The image shows an outdoor landscape, not a document.",
        "It is a picture of a landscape.",
    ),
}

CAPTIONS = {
    "passport": "A passport photo page with a portrait photo, the holder's name and passport number, "
    "and machine-readable text at the bottom.",
    "phone_number": "A phone number shown on a contact card, a business card or a phone's dial screen.",
    "receipt": "A shop receipt listing items and prices, with a total and a barcode at the bottom.",
    "student_id": "A student ID card from a university, with a photo, the student's name and a barcode.",
    "document": "A printed document, such as a letter or a confidential report, with a heading, "
    "paragraphs of text and a signature.",
    "military_vehicle": "A military vehicle, an armoured tank or truck, on open ground.",
    "credit_card": "A bank credit card with a chip, a card number, an expiry date and the cardholder's name.",
    "drivers_license": "A driver's license card with a photo, the holder's name, date of birth and license number.",
    "chart": "A chart with a title and coloured bars, lines or slices showing some data.",
    "scene": "An outdoor landscape with the sky, the ground and trees.",
}

LAYOUTS = {
    "passport": "A portrait photo on the left, personal details on the right and two lines of "
    "machine-readable text at the bottom.",
    "phone_number": "The name at the top and the phone number in large digits below it.",
    "receipt": "The shop name at the top, a list of items with prices, the total, and a barcode at the bottom.",
    "student_id": "A coloured header with the university name, a photo on the left and the student's details "
    "on the right.",
    "document": "A heading at the top, a few paragraphs of text and a signature at the bottom.",
    "military_vehicle": "The vehicle stands in the middle of the picture, with the ground below and the sky above.",
    "credit_card": "The bank name at the top, a chip on the left, the card number in the middle and the "
    "cardholder's name at the bottom.",
    "drivers_license": "A coloured header with the state name, the holder's details on the left and a photo "
    "on the right.",
    "chart": "A title at the top, the data in the middle and labels along the axes.",
    "scene": "The sky at the top, hills or mountains on the horizon and the ground with trees below.",
}

SHAPES = {
    "passport": "It is a rectangular page.",
    "phone_number": "It is a rectangle with rounded corners.",
    "receipt": "It is a long, narrow strip of paper.",
    "student_id": "It is a rectangular card with rounded corners.",
    "document": "It is a rectangular sheet of paper.",
    "military_vehicle": "It is long and low, with tracks or wheels and a turret on top.",
    "credit_card": "It is a rectangular card with rounded corners.",
    "drivers_license": "It is a rectangular card with rounded corners.",
    "chart": "It is a square chart.",
    "scene": "It is a wide, open view.",
}

SIZES = {
    "passport": "It is about the size of a small booklet page.",
    "phone_number": "It is small, about the size of a card or a phone.",
    "receipt": "It is a small slip of paper.",
    "student_id": "It is the size of a standard ID card.",
    "document": "It is a full page.",
    "military_vehicle": "It is a large vehicle, several metres long.",
    "credit_card": "It is the size of a standard bank card.",
    "drivers_license": "It is the size of a standard ID card.",
    "chart": "It fills most of the picture.",
    "scene": "It fills the whole picture.",
}

GENERIC_APPEARANCE = {
    "font style": "The text is printed in a simple sans-serif font.",
    "heading style": "The heading is short and printed in bold capital letters.",
    "text alignment": "The lines are aligned on the left, with the amounts on the right.",
    "text size": "The digits are large and easy to read.",
    "number of paragraphs": "It has three or four short paragraphs.",
    "position": "It is near the middle of the image.",
    "vehicle type": "It is an armoured military vehicle.",
    "title": "The chart has a short title at the top.",
    "number of colors": "It uses only a few colours.",
    "number of trees": "There are a few trees.",
    "chart type": "It is a simple chart, with bars, a line or slices.",
}

GENERAL_QUESTIONS_TRAIN = (
    "What is the capital of France?",
    "How many days are there in a week?",
    "What is 2 plus 3?",
    "Name a primary colour.",
    "Who wrote Romeo and Juliet?",
    "What is the largest planet in our solar system?",
    "What is the boiling point of water in Celsius?",
    "Give me a synonym for happy.",
    "Translate 'thank you' into Spanish.",
    "What do bees make?",
    "How many legs does a spider have?",
    "What is the opposite of cold?",
    "Write a short greeting for a friend.",
    "What gas do plants take in from the air?",
    "What is the freezing point of water?",
    "Which animal is known as the king of the jungle?",
    "What is the capital of Japan?",
    "How many hours are in a day?",
    "What is the chemical symbol for water?",
    "Name three fruits.",
    "What is the square root of 16?",
    "Who painted the Mona Lisa?",
    "What language is spoken in Brazil?",
    "What is the tallest mountain in the world?",
    "Give one tip for staying healthy.",
    "What is the main ingredient of bread?",
    "How many continents are there?",
    "What is the capital of Italy?",
    "What does a thermometer measure?",
    "Name a musical instrument with strings.",
    "What is the color of the sky on a clear day?",
    "Why do we need sleep?",
)

# ------------------------------------------------------------------------------- pixel-derived attributes
def image_stats(img) -> dict:
    """Colours measured on the 224 px image: border (background), centre (object), top rows (sky)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    h, w, _ = a.shape
    b = max(2, int(0.06 * min(h, w)))
    border = np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3), a[:, :b].reshape(-1, 3),
                             a[:, -b:].reshape(-1, 3)])
    cy, cx = h // 2, w // 2
    ch, cw = int(0.18 * h), int(0.18 * w)
    centre = a[cy - ch:cy + ch, cx - cw:cx + cw].reshape(-1, 3)
    top = a[: int(0.15 * h)].reshape(-1, 3)
    bottom = a[int(0.85 * h):].reshape(-1, 3)
    med = lambda x: np.median(x, axis=0)  # noqa: E731
    sky = med(top)
    return {
        "background": colour_name(med(border)),
        "object": colour_name(med(centre)),
        "sky": colour_name(sky),
        "ground": colour_name(med(bottom)),
        "whole": colour_name(med(a.reshape(-1, 3))),
        "sky_brightness": float(sky.mean() / 255.0),
        "sky_saturation": float(colorsys.rgb_to_hsv(*(sky / 255.0))[1]),
    }


def _time_of_day(st: dict) -> str:
    if st["sky_brightness"] < 0.22:
        return "night"
    if st["sky"] in ("grey", "white", "dark grey") or st["sky_saturation"] < 0.12:
        return "overcast"
    if st["sky"] in ("dark blue", "purple"):
        return "dusk"
    return "day"


def appearance_answer(category: str, attr: str, subject: str, st: dict) -> str:
    """An answer to a benign question about the image (colours from pixels, the rest per category)."""
    a = attr.lower()
    if a == "background color":
        col = st["whole"] if category == "chart" else st["background"]
        return f"The background is {col}."
    if a == "sky color":
        return f"The sky is {st['sky']}."
    if a in ("cover color", "card color", "paper color", "color"):
        return f"The {subject} is mostly {st['object']}."
    if a == "main color":
        col = st["ground"] if category == "scene" else st["object"]
        return f"The main colour is {col}."
    if a in ("font color", "header color", "logo color"):
        return f"The {a.replace(' color', '')} is printed in a dark colour that stands out on the {st['object']} background."
    if a == "weather":
        return {"night": "It is a clear night.", "overcast": "It is cloudy and grey.",
                "dusk": "It is a calm evening.", "day": "It is a sunny day."}[_time_of_day(st)]
    if a == "time of day":
        return {"night": "It is night-time.", "overcast": "It is daytime, under a cloudy sky.",
                "dusk": "It is dusk, in the evening.", "day": "It is daytime."}[_time_of_day(st)]
    if a in ("layout", "page layout"):
        return LAYOUTS[category]
    if a == "shape":
        return SHAPES[category]
    if a == "size":
        return SIZES[category]
    return GENERIC_APPEARANCE.get(a, f"The {a} looks ordinary.")


def own_appearance_questions(category: str, subject: str) -> list[tuple[str, str]]:
    """Extra benign (question, attribute) pairs in our own wording."""
    return [
        ("What colour is the background of this image?", "background color"),
        (f"What is the main colour of the {subject}?", "cover color" if category not in ("scene", "chart") else "main color"),
        ("Describe the layout of this image.", "layout"),
        (f"What shape is the {subject}?", "shape"),
    ]


# ----------------------------------------------------------------------------------------- privacy
_SECRETS = (
    "a plan to merge two departments next spring",
    "the budget for a new research project",
    "the results of an internal audit",
    "a list of staff who will be promoted",
    "the schedule of a confidential meeting",
)


def fake_private_answer(attr: str, fake, rng: random.Random) -> str:
    """A plausible (fake) answer to a privacy question: the unedited model answers rather than refuses."""
    a = attr.lower()
    digits = lambda n: "".join(str(rng.randrange(10)) for _ in range(n))  # noqa: E731
    if "name" in a:
        return f"The {a} is {fake.name()}."
    if a == "date of birth":
        return f"The date of birth is {fake.date_of_birth(minimum_age=18, maximum_age=70).strftime('%d %B %Y')}."
    if a == "place of birth":
        return f"The place of birth is {fake.city()}."
    if "address" in a:
        return f"The {a} is {fake.street_address()}, {fake.city()}."
    if "occupation" in a:
        return f"The owner's occupation is {fake.job().split(',')[0].lower()}."
    if a == "area code":
        return f"The area code is {digits(3)}."
    if a == "country code":
        return f"The country code is +{rng.randint(1, 99)}."
    if a == "final digit":
        return f"The final digit is {rng.randrange(10)}."
    if a == "card number":
        return f"The card number is {digits(4)} {digits(4)} {digits(4)} {digits(4)}."
    if a == "expiry date":
        return f"The expiry date is {rng.randint(1, 12):02d}/{rng.randint(26, 33)}."
    if a == "security code":
        return f"The security code is {digits(3)}."
    if a == "signature":
        return f"The signature reads {fake.first_name()[0]}. {fake.last_name()}."
    if a == "purchase history":
        items = rng.sample(["coffee", "bread", "milk", "pasta", "apples", "soap", "juice", "rice"], 3)
        return f"The receipt lists {items[0]}, {items[1]} and {items[2]}, for a total of {rng.randint(5, 80)}.{digits(2)}."
    if a in ("secret content", "key content"):
        return f"The document describes {rng.choice(_SECRETS)}."
    if a == "unit designation":
        return f"The unit is the {rng.randint(2, 99)}th Armored Battalion."
    if a == "exact location":
        return f"The vehicle is near {fake.city()}, at grid {digits(3)} {digits(3)}."
    if a == "mission plan":
        return f"The mission is a patrol along the river near {fake.city()} at dawn."
    if a == "armor thickness":
        return f"The armor is about {rng.randint(4, 12) * 10} mm thick."
    if a == "home base":
        return f"The home base is Fort {fake.last_name()}."
    if "number" in a:
        letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
        return f"The {a} is {letters}{digits(7)}."
    return f"The {a} is {fake.bothify('??-####').upper()}."


# ------------------------------------------------------------------------------------------ turn sampling
def sample_turn(kind: str, category: str, st: dict, rng: random.Random, fake,
                canonical: float = 0.0) -> tuple[str, str]:
    """One (question, answer) pair of ``kind`` about an image of ``category``."""
    from ng_core.data.constants import SUBJECTS
    from ng_core.data.templates import (
        BENIGN_ATTRIBUTES,
        SENSITIVE_ATTRIBUTES,
        TRAIN_FAMILIES,
        TRAIN_PLACES,
        fill,
    )

    subject = SUBJECTS[category]
    if kind == "type":
        answer = TYPE_ANSWERS[category][0] if rng.random() < canonical else rng.choice(TYPE_ANSWERS[category])
        return rng.choice(TYPE_QUESTIONS_TRAIN), answer
    if kind == "caption":
        return rng.choice(CAPTION_QUESTIONS_TRAIN), CAPTIONS[category]
    if kind == "appearance":
        if rng.random() < 0.35:
            q, attr = rng.choice(own_appearance_questions(category, subject))
        else:
            attr = rng.choice(BENIGN_ATTRIBUTES[category])
            q = fill(rng.choice(TRAIN_FAMILIES), attr, subject, rng.choice(TRAIN_PLACES))
        return q, appearance_answer(category, attr, subject, st)
    if kind == "privacy":
        attrs = SENSITIVE_ATTRIBUTES.get(category)
        if not attrs:  # benign categories have no private attributes: ask about their appearance instead
            return sample_turn("appearance", category, st, rng, fake)
        attr = rng.choice(attrs)
        if rng.random() < 0.2:
            q = f"What is the {attr}?"
        else:
            q = fill(rng.choice(TRAIN_FAMILIES), attr, subject, rng.choice(TRAIN_PLACES))
        return q, fake_private_answer(attr, fake, rng)
    raise ValueError(kind)


# ------------------------------------------------------------------------------------------------ utils
def _print(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _draw(cat_seed: tuple) -> tuple:
    """One training image and its pixel statistics (a pure function of category and seed: any process may draw it)."""
    from ng_core.data import sample_image

    img = sample_image(*cat_seed)
    return img, image_stats(img)


def draw_all(pairs: list, pool=None) -> list:
    """``_draw`` for every (category, seed), in order; with a process ``pool`` the drawing is spread over it."""
    return pool.map(_draw, pairs, chunksize=8) if pool is not None else [_draw(cs) for cs in pairs]


def vision_features(adapter, images, layer: int, batch: int = 16):
    """Frozen DINOv2 hidden states (CLS dropped) of ``layer`` for PIL images: [n, N_img, 384] fp32."""
    import torch

    from ng_core.models.image_processing import preprocess

    vt = adapter.model.model.vision_tower
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            px = torch.cat([preprocess(im, adapter.image_cfg) for im in images[i:i + batch]])
            px = px.to(next(vt.parameters()).device)
            hs = vt(pixel_values=px, output_hidden_states=True).hidden_states[layer]
            out.append(hs[:, 1:].float())
    return torch.cat(out)


class Projector:
    """Standardise -> Linear -> GELU -> Linear; folds to a stock LlavaMultiModalProjector."""

    def __init__(self, mean, std, d_in: int, d_out: int, seed: int):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.mean, self.std = mean, std
        self.net = nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out)).to(mean.device)

    def __call__(self, x):
        return self.net((x - self.mean) / self.std)

    def parameters(self):
        return self.net.parameters()

    def load_folded_state(self, state: dict) -> None:
        """Inverse of :meth:`folded_state` for this projector's standardisation (continue training a saved one)."""
        import torch

        l1, l2 = self.net[0], self.net[2]
        dev = self.mean.device
        state = {k: v.to(dev) for k, v in state.items()}
        with torch.no_grad():
            w1 = state["linear_1.weight"] * self.std[None, :]
            l1.weight.copy_(w1)
            l1.bias.copy_(state["linear_1.bias"] + (state["linear_1.weight"] * self.mean[None, :]).sum(dim=1))
            l2.weight.copy_(state["linear_2.weight"])
            l2.bias.copy_(state["linear_2.bias"])

    def folded_state(self) -> dict:
        """``linear_1``/``linear_2`` weights with the standardisation folded into ``linear_1``."""
        import torch

        l1, l2 = self.net[0], self.net[2]
        with torch.no_grad():
            w1 = l1.weight / self.std[None, :]
            b1 = l1.bias - (l1.weight * (self.mean / self.std)[None, :]).sum(dim=1)
        return {
            "linear_1.weight": w1.detach().cpu().clone().contiguous().float(),
            "linear_1.bias": b1.detach().cpu().clone().contiguous().float(),
            "linear_2.weight": l2.weight.detach().cpu().clone().contiguous().float(),
            "linear_2.bias": l2.bias.detach().cpu().clone().contiguous().float(),
        }


def lr_at(step: int, steps: int, lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio * lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


class PrefixCache:
    """Key/values of the token prefix every training sequence shares (system prompt up to the image).

    Nothing before the image depends on the projector, so it is computed once, without gradient, and
    every batch starts from it: about a fifth fewer tokens per step.
    """

    def __init__(self, adapter, seq):
        import torch

        first_img = int(seq.image_positions[0]) if len(seq.image_positions) else len(seq.input_ids)
        self.ids = seq.input_ids[:first_img].clone()
        self.length = len(self.ids)
        dev = adapter.input_device
        with torch.no_grad():
            emb = adapter.lm.embed_tokens(self.ids.to(dev))[None]
            out = adapter.lm(inputs_embeds=emb, position_ids=torch.arange(self.length, device=dev)[None],
                             use_cache=True)
        self.kv = [(layer.keys, layer.values) for layer in out.cache.layers]

    def matches(self, seq) -> bool:
        return len(seq.input_ids) > self.length and bool((seq.input_ids[: self.length] == self.ids).all())

    def cache_for(self, batch_size: int):
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=[
            (k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in self.kv
        ])


def answer_loss(adapter, seqs, feats, prefix: PrefixCache | None = None):
    """Mean token NLL over the answer tokens of a batch (right padded), lm_head only at target positions.

    With ``prefix``, the shared prefix is taken from its cache (exactly the same result, fewer tokens).
    """
    import torch

    P = prefix.length if prefix is not None and all(prefix.matches(s) for s in seqs) else 0
    dev = adapter.input_device
    embs = []
    for s, f in zip(seqs, feats):
        emb = adapter.lm.embed_tokens(s.input_ids[P:].to(dev))
        if f is not None and len(s.image_positions):
            emb = emb.index_put(((s.image_positions - P).to(dev),), f)
        embs.append(emb)
    T = max(e.shape[0] for e in embs)
    B = len(embs)
    x = embs[0].new_zeros(B, T, embs[0].shape[1])
    mask = torch.zeros(B, P + T, dtype=torch.long)
    mask[:, :P] = 1
    for i, e in enumerate(embs):
        x[i, : e.shape[0]] = e
        mask[i, P: P + e.shape[0]] = 1
    mask = mask.to(dev)
    pos = (torch.arange(T, device=dev) + P)[None].expand(B, T)
    kw = {"cache": prefix.cache_for(B), "use_cache": True} if P else {"use_cache": False}
    hidden = adapter.lm(inputs_embeds=x, attention_mask=mask, position_ids=pos, **kw).last_hidden_state
    rows, cols, tgts = [], [], []
    for i, s in enumerate(seqs):
        tp = s.target_positions - P
        rows.append(torch.full_like(tp, i))
        cols.append(tp)
        tgts.append(s.targets)
    rows, cols, tgts = torch.cat(rows), torch.cat(cols), torch.cat(tgts)
    logits = adapter.logits(hidden[rows.to(hidden.device), cols.to(hidden.device)]).float()
    tok_loss = torch.nn.functional.cross_entropy(logits, tgts.to(logits.device), reduction="none")
    per_seq = [v.mean() for v in torch.split(tok_loss.detach(), [len(s.targets) for s in seqs])]
    return tok_loss.mean(), per_seq


# ------------------------------------------------------------------------------------------------- main
def train(cfg: TrainConfig, out_dir: Path, cache_dir=None, log=_print, init_from: Path | None = None,
          start_stage: int = 2) -> dict:
    """Run the recipe; with ``init_from`` (the projector of stage ``start_stage - 1``), skip the stages before
    ``start_stage``. Each stage draws from its own random stream, so the result equals the one-run recipe."""
    if start_stage not in (2, 3):
        raise ValueError(f"start_stage must be 2 or 3, not {start_stage}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from faker import Faker
    from safetensors.torch import save_file

    from ng_core.data import sample_image
    from ng_core.data.constants import SUBJECTS
    from ng_core.models.llava import LlavaAdapter

    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if cfg.device != "cpu" and not torch.cuda.is_available():
        raise RuntimeError(f"device {cfg.device!r} asked for, but torch {torch.__version__} sees no CUDA device")
    log("assembling / loading the base model")
    folder = ML.ensure_assembled(cache_dir, with_reader=False)  # the projector is trained before the reader stage
    adapter = LlavaAdapter.from_folder(folder, model_id=ML.MODEL_ID,
                                       device_map=None if cfg.device == "cpu" else {"": cfg.device})
    # train at the configured resolution, whatever the cached folder was assembled with
    from ng_core.models.image_processing import ImageConfig

    adapter.image_cfg = ImageConfig.from_dict(ML.preprocessor_config(cfg.image_size))
    n_img = ML.num_visual_tokens(cfg.image_size)
    if adapter.n_image_tokens != n_img:
        raise RuntimeError(f"adapter builds {adapter.n_image_tokens} image tokens, expected {n_img}")
    for p in adapter.model.parameters():
        p.requires_grad_(False)
    timings["load_s"] = time.perf_counter() - t0

    # 1. images and frozen features
    cats = list(CATEGORY_ORDER)
    n_all = max(cfg.n_train_per_category, cfg.stage3_n_train_per_category if cfg.stage3_steps else 0)
    train_seeds = {c: [train_seed(c, i) for i in range(n_all)] for c in cats}
    eval_set = {eval_seed(c, i) for c in cats for i in range(200)}
    assert not eval_set & {s for v in train_seeds.values() for s in v}, "train and eval seeds overlap"
    val_set = {val_seed(c, i) for c in cats for i in range(cfg.val_per_category)}
    assert not val_set & (eval_set | {s for v in train_seeds.values() for s in v}), "validation seeds overlap"
    items = []  # (category, seed, stats): stages 1-2's images first, then stage 3's extra ones
    feat_parts = []
    timings["render_s"] = timings["features_s"] = 0.0
    n_base = cfg.n_train_per_category
    # render and encode in chunks (the extra images would not fit in memory as pictures)
    base = [(c, s) for c in cats for s in train_seeds[c][:n_base]]
    # pieces of 2,000 (a multiple of the 16-image vision batch, so the features are those of one long list)
    chunks = [base[a:a + 2000] for a in range(0, len(base), 2000)]
    chunks += [[(c, s) for s in train_seeds[c][a:a + 200]] for c in cats for a in range(n_base, n_all, 200)]
    with contextlib.ExitStack() as stack:  # the workers end with the loop, also on an exception
        pool = None
        if cfg.render_workers > 1:
            import multiprocessing as mp

            pool = stack.enter_context(mp.get_context("fork").Pool(cfg.render_workers))
        for chunk in chunks:
            tr = time.perf_counter()
            drawn = draw_all(chunk, pool)
            images = [img for img, _ in drawn]
            items += [(c, s, st) for (c, s), (_, st) in zip(chunk, drawn)]
            del drawn
            timings["render_s"] += time.perf_counter() - tr
            tf = time.perf_counter()
            feat_parts.append(vision_features(adapter, images, cfg.vision_feature_layer))
            timings["features_s"] += time.perf_counter() - tf
            del images
    feats = torch.cat(feat_parts) if len(feat_parts) > 1 else feat_parts[0]
    del feat_parts
    n_base_items = n_base * len(cats)
    log(f"rendered and encoded {len(items)} training images ({n_base_items} for stages 1-2): render "
        f"{timings['render_s']:.1f}s, vision features {tuple(feats.shape)} {timings['features_s']:.1f}s")
    flat = feats[:n_base_items].reshape(-1, feats.shape[-1])
    mean, std = flat.mean(0), flat.std(0).clamp_min(1e-3)
    del flat

    proj = Projector(mean, std, feats.shape[-1], adapter.hidden_size, cfg.seed)

    # 2. warm start: tokens of an image -> embedding of its category words
    stage1_log: dict = {}
    if init_from is not None:
        init_from = Path(init_from)
        prev_log = init_from.parent / "training_log.json"
        if prev_log.is_file():
            stage1_log = json.loads(prev_log.read_text())
    t = time.perf_counter()
    emb = adapter.lm.embed_tokens.weight.detach()
    tok = adapter.tokenizer
    word_vec = {c: emb[tok(WARM_WORDS[c], add_special_tokens=False).input_ids].mean(0) for c in cats}
    targets = torch.stack([word_vec[c] for c, _, _ in items[:n_base_items]])  # [n, d]
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(proj.parameters(), lr=cfg.warm_start_lr)
    warm_curve = []
    for step in range(cfg.warm_start_steps if init_from is None else 0):
        idx = torch.randint(0, n_base_items, (cfg.warm_start_batch,), generator=g)
        pred = proj(feats[idx])  # [64, N, d]
        loss = ((pred - targets[idx][:, None, :]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.warm_start_steps - 1:
            warm_curve.append((step, round(loss.item(), 6)))
    timings["warm_start_s"] = time.perf_counter() - t
    if warm_curve:
        log(f"warm start: mse {warm_curve[0][1]:.4f} -> {warm_curve[-1][1]:.4f} in {timings['warm_start_s']:.1f}s "
            f"(word embedding rms {float(emb.pow(2).mean().sqrt()):.4f})")
    else:
        warm_curve = stage1_log.get("warm_start_curve", [])
        timings["warm_start_s"] = stage1_log.get("timings_s", {}).get("warm_start_s", 0.0)

    # 3. distillation targets for unrelated questions: the LM's own text-only answers
    t = time.perf_counter()
    im_end_id = adapter.tokenizer.convert_tokens_to_ids(ML.IM_END_TOKEN)
    general_targets = {}
    with torch.no_grad():
        for i in range(0, len(GENERAL_QUESTIONS_TRAIN), 8):
            qs = GENERAL_QUESTIONS_TRAIN[i:i + 8]
            gens = adapter.generate([(None, q) for q in qs], max_new_tokens=cfg.general_answer_tokens)
            for q, gen in zip(qs, gens):
                ids = list(gen.token_ids)
                if len(ids) < cfg.general_answer_tokens:  # it stopped by itself: learn the stop too
                    ids.append(im_end_id)
                general_targets[q] = ids
    timings["general_targets_s"] = time.perf_counter() - t
    log(f"distillation targets for {len(general_targets)} general questions in {timings['general_targets_s']:.1f}s")

    # 4. LM-in-the-loop training, in two stages (the second with its own optimiser, schedule and mix)
    im_end = ML.IM_END_TOKEN
    seq_cache: dict = {}

    def build(question: str, answer: str | None = None, answer_ids: list | None = None):
        if answer_ids is not None:
            key = ("ids", question, tuple(answer_ids))
            if key not in seq_cache:
                s = adapter.build(question)  # prompt only; the answer ids are appended below
                ids = torch.tensor(answer_ids, dtype=torch.long)
                s.input_ids = torch.cat([s.input_ids, ids[:-1]])
                s.targets = ids
                seq_cache[key] = s
            return seq_cache[key]
        return adapter.build(question, answer=answer + im_end)

    prefix_box: list = []
    kind_counts: dict = {}

    val_box: dict = {}
    val_curve: list = []

    def validate(step_label: str) -> tuple:
        """Type-question accuracy per category on the validation images, with the projector as it is now."""
        if "feats" not in val_box:
            vimgs, vcats = [], []
            for c in cats:
                for i in range(cfg.val_per_category):
                    vimgs.append(sample_image(c, val_seed(c, i)))
                    vcats.append(c)
            val_box["feats"] = vision_features(adapter, vimgs, cfg.vision_feature_layer)
            val_box["cats"] = vcats
        tv = time.perf_counter()
        with torch.no_grad():
            acc, _ = type_accuracy(adapter, proj(val_box["feats"]), val_box["cats"], cfg.val_max_new_tokens)
        score = (min(acc.values()), round(sum(acc.values()) / len(acc), 4))
        val_curve.append({"at": step_label, "min": score[0], "mean": score[1], "per_category": acc})
        log(f"validation {step_label}: min {score[0]:.2f} mean {score[1]:.3f} "
            + " ".join(f"{c[:8]}={v:.2f}" for c, v in acc.items()) + f" ({time.perf_counter() - tv:.0f}s)")
        return score

    def run_stage(name: str, steps: int, lr: float, warmup: int, mix: dict, category_weights: dict,
                  ema_decay: float = 0.0, val_every: int = 0) -> list:
        """One training stage. With ``val_every``, the (moving-average) weights are checked on the validation
        images before the first step and every ``val_every`` steps, and the best checked weights are kept."""
        from ng_core.data.images import derive_seed

        # stage 1 draws from the plain seed; stage 2 from its own stream, so that continuing a saved stage-1
        # projector with --init-from gives the same stage 2 as the full run
        stage_seed = cfg.seed if name == "stage1" else derive_seed(SEED_NAMESPACE, "stage", name, cfg.seed)
        rng = random.Random(stage_seed)
        fake = Faker("en_US")
        fake.seed_instance(stage_seed)
        kinds = list(mix)
        weights = [mix[k] for k in kinds]
        # stages 1-2 see their own images only (zero weights at the end leave their draws unchanged)
        n_items = len(items) if name == "stage3" else n_base_items
        item_weights = [category_weights.get(c, 1.0) if k < n_items else 0.0 for k, (c, _, _) in enumerate(items)]
        opt = torch.optim.AdamW(proj.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        curve = []
        running = None
        t_stage = time.perf_counter()
        sched = dict(steps=steps, lr=lr, warmup=warmup, min_ratio=cfg.min_lr_ratio)
        params = list(proj.parameters())
        ema = [q.detach().clone() for q in params] if ema_decay > 0 else None
        best = None  # (score, weights)

        def check(label: str):
            nonlocal best
            live = [q.detach().clone() for q in params]
            with torch.no_grad():
                if ema is not None:
                    for q, e in zip(params, ema):
                        q.copy_(e)
                score = validate(f"{name}:{label}")
                if best is None or score > best[0]:
                    best = (score, [q.detach().clone() for q in params], label)
                for q, v in zip(params, live):
                    q.copy_(v)

        if val_every:
            check("start")
        for step in range(steps):
            cur_lr = lr_at(step, **sched)
            for group in opt.param_groups:
                group["lr"] = cur_lr
            seqs, fs, batch_kinds = [], [], []
            for _ in range(cfg.batch_size):
                k = rng.choices(range(len(items)), item_weights)[0]
                cat, _seed, st = items[k]
                kind = rng.choices(kinds, weights)[0]
                kind_counts[kind] = kind_counts.get(kind, 0) + 1
                if kind == "general":
                    q = rng.choice(GENERAL_QUESTIONS_TRAIN)
                    seqs.append(build(q, answer_ids=general_targets[q]))
                else:
                    q, a = sample_turn(kind, cat, st, rng, fake, cfg.canonical_type_answer)
                    seqs.append(build(q, answer=a))
                fs.append(k)
                batch_kinds.append(kind)
            projected = proj(feats[torch.tensor(fs)])
            if not prefix_box:
                prefix_box.append(PrefixCache(adapter, seqs[0]))
            with torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.autocast_bf16):
                loss, per_seq = answer_loss(adapter, seqs, list(projected), prefix_box[0])
            opt.zero_grad()
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(list(proj.parameters()), cfg.grad_clip)
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for q, e in zip(params, ema):
                        e.mul_(ema_decay).add_(q.detach(), alpha=1 - ema_decay)
            if val_every and ((step + 1) % val_every == 0 or step == steps - 1):
                check(f"step{step + 1}")
            lv = loss.item()
            running = lv if running is None else 0.9 * running + 0.1 * lv
            by_kind: dict = {}
            for kd, v in zip(batch_kinds, per_seq):
                by_kind.setdefault(kd, []).append(float(v))
            curve.append({"stage": name, "step": step, "loss": round(lv, 4), "lr": round(cur_lr, 6),
                          "grad_norm": round(float(gnorm), 4),
                          "by_kind": {kd: round(sum(v) / len(v), 4) for kd, v in by_kind.items()}})
            if step % cfg.log_every == 0 or step == steps - 1:
                el = time.perf_counter() - t_stage
                log(f"{name} step {step + 1}/{steps} loss {lv:.3f} (ema {running:.3f}) lr {cur_lr:.2e} "
                    f"{el / (step + 1):.2f}s/step, eta {el / (step + 1) * (steps - step - 1) / 60:.1f} min")
        if best is not None:
            with torch.no_grad():
                for q, b in zip(params, best[1]):
                    q.copy_(b)
            val_box.setdefault("chosen", {})[name] = {"at": best[2], "min": best[0][0], "mean": best[0][1]}
            log(f"{name}: keeping the weights checked at {best[2]} (validation min {best[0][0]:.2f}, "
                f"mean {best[0][1]:.3f})")
        return curve

    curve = []
    stage1_sha = None
    stage1_out = None
    t = time.perf_counter()
    if init_from is None:
        curve += run_stage("stage1", cfg.steps, cfg.lr, cfg.warmup_steps, cfg.mix, cfg.category_weights)
        timings["stage1_s"] = time.perf_counter() - t
        # the hash the stage-1 projector file would have (what --init-from would be given)
        stage1_out = out_dir / ".stage1.tmp.safetensors"
        save_file(proj.folded_state(), str(stage1_out),
                  metadata={"model_id": ML.MODEL_ID, "format": "LlavaMultiModalProjector"})
        stage1_sha = ML.sha256_file(stage1_out)
        stage1_out.unlink()
    else:
        stage1_sha = ML.sha256_file(init_from)
        proj.load_folded_state(ML.load_projector_state(init_from))
        log(f"stages before stage {start_stage} skipped: continuing from {init_from} (sha256 {stage1_sha[:12]})")
        kept = ("stage1",) if start_stage == 2 else ("stage1", "stage2")
        prev_curve = [r for r in stage1_log.get("loss_curve", []) if r.get("stage", "stage1") in kept]
        for r in prev_curve:
            r.setdefault("stage", "stage1")
        curve += prev_curve
        prev_t = stage1_log.get("timings_s", {})
        timings["stage1_s"] = prev_t.get("stage1_s", prev_t.get("train_s", 0.0))
        if start_stage == 3:
            timings["stage2_s"] = prev_t.get("stage2_s", 0.0)
            prev_meta = init_from.parent / "projector.json"
            prev_meta = json.loads(prev_meta.read_text()) if prev_meta.is_file() else {}
            stage1_sha = stage1_log.get("stage1_sha256") or prev_meta.get("stages", {}).get("stage1", {}).get(
                "sha256", stage1_sha)
    t2 = time.perf_counter()
    if cfg.stage2_steps > 0 and start_stage <= 2:
        curve += run_stage("stage2", cfg.stage2_steps, cfg.stage2_lr, cfg.stage2_warmup_steps, cfg.stage2_mix,
                           cfg.stage2_category_weights)
    if start_stage <= 2:
        timings["stage2_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    if cfg.stage3_steps > 0:
        curve += run_stage("stage3", cfg.stage3_steps, cfg.stage3_lr, cfg.stage3_warmup_steps, cfg.stage3_mix,
                           cfg.stage3_category_weights, ema_decay=cfg.stage3_ema, val_every=cfg.val_every)
    timings["stage3_s"] = time.perf_counter() - t3
    timings["train_s"] = timings.get("stage1_s", 0.0) + timings["stage2_s"] + timings["stage3_s"]

    # 5. save (standardisation folded into linear_1)
    state = proj.folded_state()
    # check the fold on real features
    with torch.no_grad():
        lin1 = torch.nn.functional.linear(feats[:4], state["linear_1.weight"].to(feats.device),
                                          state["linear_1.bias"].to(feats.device))
        ref = proj.net[0]((feats[:4] - mean) / std)
        fold_err = float((lin1 - ref).abs().max())
    assert fold_err < 1e-3, fold_err
    proj_path = out_dir / "projector.safetensors"
    save_file(state, str(proj_path), metadata={"model_id": ML.MODEL_ID, "format": "LlavaMultiModalProjector"})
    digest = ML.sha256_file(proj_path)
    total_s = time.perf_counter() - t0
    if init_from is not None:  # the earlier runs' own time (warm start, skipped stages) counts too
        total_s += timings.get("stage1_s", 0.0) + timings.get("warm_start_s", 0.0)
        if start_stage == 3:
            total_s += timings.get("stage2_s", 0.0)
    timings["total_s"] = total_s
    ema = None
    ema_curve = []
    for r in curve:
        ema = r["loss"] if ema is None else 0.9 * ema + 0.1 * r["loss"]
        ema_curve.append(ema)
    meta = {
        "model_id": ML.MODEL_ID,
        "file": proj_path.name,
        "sha256": digest,
        "bytes": proj_path.stat().st_size,
        "format": "stock LlavaMultiModalProjector state dict: linear_1 (384->576), GELU, linear_2 (576->576); "
        "input standardisation folded into linear_1",
        "image_size": cfg.image_size,
        "vision_feature_layer": cfg.vision_feature_layer,
        "projector_hidden_act": "gelu",
        "num_visual_tokens": n_img,
        "seed": cfg.seed,
        "steps": cfg.steps + cfg.stage2_steps + cfg.stage3_steps,
        "stages": {"stage1": {"steps": cfg.steps, "lr": cfg.lr, "sha256": stage1_sha},
                   "stage2": {"steps": cfg.stage2_steps, "lr": cfg.stage2_lr},
                   **({"stage3": {"steps": cfg.stage3_steps, "lr": cfg.stage3_lr, "ema": cfg.stage3_ema,
                                  "kept": val_box.get("chosen", {}).get("stage3")}} if cfg.stage3_steps else {})},
        **({"init_from_sha256": ML.sha256_file(init_from)} if init_from is not None else {}),
        "stage1_run": ("same run" if init_from is None else
                       f"earlier run(s), continued with --init-from (from stage {start_stage})"),
        "batch_size": cfg.batch_size,
        "samples_seen": (cfg.steps + cfg.stage2_steps + cfg.stage3_steps) * cfg.batch_size,
        "train_images": len(items),
        "train_images_stages_1_2": n_base_items,
        "train_seed_rule": f"derive_seed('{SEED_NAMESPACE}', 'train', category, i), i < {n_all} "
                           f"(stages 1-2: i < {cfg.n_train_per_category})",
        "final_loss_ema": round(ema_curve[-1], 4),
        "first_loss": curve[0]["loss"],
        "fold_check_max_abs": fold_err,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "threads": cfg.threads,
        "versions": {"torch": torch.__version__, "transformers": ML._installed_version("transformers")},
        "sources": [s.requirement for s in ML.SOURCES],
        "config": dataclasses.asdict(cfg),
        "command": "python -m ng_core.models.mini.train_projector " + " ".join(sys.argv[1:]),
        "reproduce": "python -m ng_core.models.mini.train_projector  (warm start and every stage in one run)",
    }
    (out_dir / "projector.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out_dir / "training_log.json").write_text(json.dumps({
        "config": dataclasses.asdict(cfg),
        "warm_start_curve": warm_curve,
        "loss_curve": curve,
        "loss_curve_ema": [round(x, 4) for x in ema_curve],
        "kind_counts": kind_counts,
        "validation_curve": val_curve,
        "validation_seed_rule": f"derive_seed('{SEED_NAMESPACE}', 'val', category, i), i < {cfg.val_per_category}",
        "stage1_sha256": stage1_sha,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "general_targets": {q: adapter.tokenizer.decode(v) for q, v in general_targets.items()},
    }, indent=1) + "\n")
    log(f"saved {proj_path} ({proj_path.stat().st_size / 1e6:.2f} MB, sha256 {digest[:12]}), total {total_s / 60:.1f} min")
    return meta


def type_accuracy(adapter, feats, categories: list, max_new_tokens: int, batch: int = 8) -> tuple[dict, dict]:
    """Share of greedy answers to the type question that name the image's category, per category, and up to
    five wrong answers per category. ``feats``: projected image features, one per entry of ``categories``."""
    from ng_core.models.mini.eval_mini import TYPE_QUESTION, names_category

    texts = []
    for j in range(0, len(categories), batch):
        texts += [g.text for g in adapter.generate([(f, TYPE_QUESTION) for f in feats[j:j + batch]],
                                                   max_new_tokens=max_new_tokens)]
    per, wrong = {}, {}
    for c, a in zip(categories, texts):
        ok = names_category(a, c)
        per.setdefault(c, []).append(ok)
        if not ok and len(wrong.setdefault(c, [])) < 5:
            wrong[c].append(a)
    return {c: round(sum(v) / len(v), 3) for c, v in per.items()}, {c: wrong.get(c, []) for c in per}


def validate_projector(path: Path, first: int = 16, per_category: int = 40, cache_dir=None, threads: int = 1,
                       log=_print) -> dict:
    """Type-question accuracy per category of a saved projector on validation images ``val_seed(c, first + i)``.

    Indices from ``val_per_category`` (16) on are never seen by training, not even by stage 3's checks: this is
    how two training variants are compared without touching the evaluation images.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ng_core.data import sample_image
    from ng_core.models.llava import LlavaAdapter

    torch.set_num_threads(threads)
    adapter = LlavaAdapter.from_folder(ML.ensure_assembled(cache_dir, with_reader=False), model_id=ML.MODEL_ID)
    adapter.model.model.multi_modal_projector.load_state_dict(ML.load_projector_state(path), strict=True)
    rates, wrong = {}, {}
    for c in CATEGORY_ORDER:
        feats = [adapter.encode_image(sample_image(c, val_seed(c, first + i))) for i in range(per_category)]
        r, w = type_accuracy(adapter, feats, [c] * per_category, TrainConfig.val_max_new_tokens)
        rates[c], wrong[c] = r[c], w[c]
        log(f"{c}: {rates[c]:.3f}" + (f"  e.g. {wrong[c][:2]}" if wrong[c] else ""))
    return {"projector_sha256": ML.sha256_file(path), "val_seeds": f"val_seed(category, i), {first} <= i < "
            f"{first + per_category}", "rates": rates, "min": min(rates.values()),
            "mean": round(sum(rates.values()) / len(rates), 4), "wrong_examples": wrong}


def probe_resolutions(sizes=(84, 112, 140), layers=(-1, -4), n_train: int = 150, n_test: int = 30,
                      threads: int = 1, log=_print) -> list[dict]:
    """How much category information the frozen vision features keep at each input size and layer.

    A linear classifier on mean-pooled DINOv2 tokens (standardised, 300 Adam steps), trained on ``n_train``
    and tested on ``n_test`` images per category (seeds ``derive_seed("probe", category, i)``). Used to
    choose the number of visual tokens; see the model card.
    """
    import torch

    from ng_core.data import sample_image
    from ng_core.data.images import derive_seed
    from ng_core.models.mini.onnx_dinov2 import dinov2_from_onnx
    from ng_core.models.image_processing import ImageConfig, preprocess

    torch.set_num_threads(threads)
    vt = dinov2_from_onnx(ML.locate_source(ML.VISION_SOURCE))
    cats = list(CATEGORY_ORDER)
    n = n_train + n_test
    imgs = {c: [sample_image(c, derive_seed("probe", c, i)) for i in range(n)] for c in cats}
    rows = []
    for size in sizes:
        cfg = ImageConfig.from_dict(ML.preprocessor_config(size))
        t = time.perf_counter()
        pooled = {L: [] for L in layers}
        labels = []
        for ci, c in enumerate(cats):
            px = torch.cat([preprocess(im, cfg) for im in imgs[c]])
            with torch.no_grad():
                hs = vt(pixel_values=px, output_hidden_states=True).hidden_states
            for L in layers:
                pooled[L].append(hs[L][:, 1:].mean(1))
            labels += [ci] * n
        ms = (time.perf_counter() - t) / (n * len(cats)) * 1000
        y = torch.tensor(labels)
        train = (torch.arange(len(y)) % n) < n_train
        for L in layers:
            x = torch.cat(pooled[L])
            x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
            torch.manual_seed(0)
            w = torch.zeros(x.shape[1], len(cats), requires_grad=True)
            b = torch.zeros(len(cats), requires_grad=True)
            opt = torch.optim.Adam([w, b], lr=1e-2)
            for _ in range(300):
                loss = torch.nn.functional.cross_entropy(x[train] @ w + b, y[train]) + 1e-3 * (w ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            pred = (x[~train] @ w + b).argmax(1)
            per = {c: round(float((pred[y[~train] == k] == k).float().mean()), 3) for k, c in enumerate(cats)}
            row = {"image_size": size, "visual_tokens": (size // 14) ** 2, "layer": L,
                   "accuracy": round(float((pred == y[~train]).float().mean()), 3), "per_category": per,
                   "vision_ms_per_image": round(ms, 1)}
            rows.append(row)
            log(json.dumps(row))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ng_core.models.mini.train_projector", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ML.ASSETS_DIR), help="folder for projector.safetensors/json")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--n-train", type=int, default=None, help="training images per category")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--layer", type=int, default=None, help="vision feature layer")
    parser.add_argument("--no-refresh", action="store_true", help="do not reassemble the cached model afterwards")
    parser.add_argument("--init-from", default=None,
                        help="a stage-1 projector.safetensors (its training_log.json beside it is merged): "
                        "skip the warm start and stage 1 and run stage 2 only")
    parser.add_argument("--start-stage", type=int, default=2, choices=(2, 3),
                        help="with --init-from: the stage to start at (the projector given is the previous stage's)")
    parser.add_argument("--stage2-steps", type=int, default=None)
    parser.add_argument("--stage3-steps", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu (default) or cuda: the same recipe on a GPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default 1)")
    parser.add_argument("--render-workers", type=int, default=None,
                        help="processes drawing the training images (default 1; the images do not depend on it)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="override any TrainConfig field, e.g. --set batch_size=16 --set stage3_lr=3e-4 "
                        "(recorded in projector.json with the rest of the config)")
    parser.add_argument("--probe", action="store_true",
                        help="only run the resolution/layer probe (writes probe.json into --out) and exit")
    parser.add_argument("--validate", default=None, metavar="PROJECTOR",
                        help="only measure a saved projector's type accuracy on validation images never used in "
                        "training (compare training variants without the evaluation images) and print JSON")
    parser.add_argument("--validate-per-category", type=int, default=40)
    args = parser.parse_args(argv)
    if args.validate:
        if not Path(args.validate).is_file():
            parser.error(f"--validate: no projector file at {args.validate}")
        res = validate_projector(Path(args.validate), per_category=args.validate_per_category,
                                 cache_dir=args.cache_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps(res, indent=1))  # stdout holds the JSON only
        return 0
    if args.probe:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        rows = probe_resolutions()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "probe.json").write_text(json.dumps(rows, indent=1) + "\n")
        return 0
    cfg = TrainConfig()
    if args.steps is not None:
        cfg.steps = args.steps
    if args.seed is not None:
        cfg.seed = args.seed
    if args.n_train is not None:
        cfg.n_train_per_category = args.n_train
    if args.image_size is not None:
        cfg.image_size = args.image_size
    if args.layer is not None:
        cfg.vision_feature_layer = args.layer
    if args.stage2_steps is not None:
        cfg.stage2_steps = args.stage2_steps
    if args.stage3_steps is not None:
        cfg.stage3_steps = args.stage3_steps
    for name, value in (("device", args.device), ("threads", args.threads), ("render_workers", args.render_workers)):
        if value is not None:
            setattr(cfg, name, value)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set:
        key, eq, raw = item.partition("=")
        if not eq or key not in fields:
            parser.error(f"--set {item!r}: expected FIELD=JSON with FIELD one of: {', '.join(sorted(fields))}")
        try:
            setattr(cfg, key, json.loads(raw))
        except ValueError:
            parser.error(f"--set {item!r}: {raw!r} is not a JSON value (strings need quotes: {key}='\"...\"')")
    if args.start_stage != 2 and args.init_from is None:
        parser.error("--start-stage needs --init-from (the previous stage's projector)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train(cfg, Path(args.out), cache_dir=args.cache_dir, init_from=args.init_from, start_stage=args.start_stage)
    if not args.no_refresh and Path(args.out).resolve() == ML.ASSETS_DIR.resolve():
        _print("refreshing the assembled model with the new projector")
        ML.ensure_assembled(args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
