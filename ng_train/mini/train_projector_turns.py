"""The turns the projector stage trains on: a (question, answer) pair of a given kind about one image.

Why a module of its own: which questions are asked and how they are answered (type, caption, appearance from
the pixels, fake but plausible private values) is the recipe's content, apart from the loop that runs it.
"""

from __future__ import annotations

import random

from ng_core.data.constants import SUBJECTS
from ng_core.data.templates import (
    BENIGN_ATTRIBUTES,
    SENSITIVE_ATTRIBUTES,
    TRAIN_FAMILIES,
    TRAIN_PLACES,
    fill,
)
from ng_train.mini.train_recipe import (
    CAPTION_QUESTIONS_TRAIN,
    CAPTIONS,
    TYPE_ANSWERS,
    TYPE_QUESTIONS_TRAIN,
    appearance_answer,
)


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
