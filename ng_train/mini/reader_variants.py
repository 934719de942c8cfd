"""How the reader's training turns are varied, so that type answers cannot lean on one cue.

Each variant is off by default and switched on by a share in ``ReaderTrainConfig`` (:mod:`.train_reader`):
a type turn may see another category's look (``swapped_image``), only some of the lines read
(``thinned_reading``), or a changed copy of the card's own look (``changed_look``); a training document may be
photographed sideways (``sideways``). Every draw is seeded, so a recipe gives the same turns each time.
docs/experiments/reader-type-variants measures each of them.
"""
from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from ng_core.data.images import derive_seed
from ng_core.models.reading import READING_HEADER, block_lines

SEED_NAMESPACE = "ng-mini-llava-reader"

#: the categories that may be photographed sideways (``ReaderTrainConfig.sideways_share``)
SIDEWAYS_CATEGORIES = ("passport", "phone_number", "receipt", "student_id", "document", "credit_card",
                       "drivers_license")


#: the changes ``changed_look`` draws from, one per image
LOOK_CHANGES = ("hue", "invert", "grey", "crop", "blur", "turn", "blank")


def changed_look(image, category: str, index: int):
    """``(image, change)``: a copy of a training image with one change to its look (seeded per image).

    The words on it stay where they are or vanish (blur, blank): the type turns that see it are answered from the
    reading (see ``ReaderTrainConfig.type_look_share``).
    """
    rng = random.Random(derive_seed(SEED_NAMESPACE, "look", category, index))
    change = rng.choice(LOOK_CHANGES)
    img = image.convert("RGB")
    w, h = img.size
    if change == "hue":
        hsv = np.asarray(img.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + rng.randint(40, 215)) % 256
        img = Image.fromarray(hsv, "HSV").convert("RGB")
    elif change == "invert":
        img = ImageOps.invert(img)
    elif change == "grey":
        img = ImageOps.grayscale(img).convert("RGB")
    elif change == "crop":
        cw, ch = int(w * rng.uniform(0.5, 0.85)), int(h * rng.uniform(0.5, 0.85))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x, y, x + cw, y + ch))
    elif change == "blur":
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(3.0, 6.0)))
    elif change == "turn":
        img = img.rotate(rng.choice((90, 270)), expand=True)
    else:  # blank
        v = rng.randint(60, 230)
        img = Image.new("RGB", (w, h), (v, v, v))
    return img, change


def sideways(image, category: str, index: int, share: float):
    """The training image, turned 90 degrees one way or the other for a ``share`` of the documents (seeded)."""
    if not share or category not in SIDEWAYS_CATEGORIES:
        return image
    rng = random.Random(derive_seed(SEED_NAMESPACE, "sideways", category, index))
    if rng.random() >= share:
        return image
    return image.rotate(rng.choice((90, 270)), expand=True)


def swapped_image(kind: str, category: str, reading: str | None, rng: random.Random, share: float,
                  others: dict) -> int | None:
    """For a type turn, maybe the index of an image of another category to show instead of the card's own.

    ``others[category]`` lists the images of every other category that takes part (a category missing from
    ``others`` is never swapped). Only cards whose reading has text lines are swapped: the answer must then come
    from the words read (see ``ReaderTrainConfig.type_swap_share``).
    """
    if kind != "type" or not share or category not in others or not block_lines(reading) or rng.random() >= share:
        return None
    return rng.choice(others[category])


def thinned_reading(kind: str, reading: str | None, rng: random.Random, share: float, keep: float) -> str | None:
    """For a type turn, maybe the reading block with some text lines left out and the rest shuffled.

    Every line is kept with probability ``keep`` (at least one stays); the colour line, when there is one, stays
    last. Other turns, and readings without text lines, are returned unchanged (see ``type_thin_share``).
    """
    lines = block_lines(reading)
    if kind != "type" or not share or len(lines) < 2 or rng.random() >= share:
        return reading
    kept = [ln for ln in lines if rng.random() < keep] or [rng.choice(lines)]
    rng.shuffle(kept)
    tail = reading.split("\n")[1 + len(lines):]  # the colour line (block_lines leaves it out)
    return "\n".join([READING_HEADER, *kept, *tail])
