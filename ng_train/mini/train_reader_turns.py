"""The reader stage's training turns: a (question, answer) pair about one training card, answered from the
generator's ground truth (the true field values the OCR read, the colours measured on the pixels) and the
recipe's wordings. ``train_reader`` draws them; their variants (swapped, thinned, turned, changed looks) are
in ``reader_variants``.
"""
from __future__ import annotations

import random
import re

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


# ------------------------------------------------------------------------------------------ ground truth
def norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(text).lower())


_PHONE_LABELS = ("phone", "tel", "mobile", "cell", "call", "fax", "ph", "direct", "office")
_NAME_LABELS = ("name", "surname", "holder", "cardholder", "student", "customer", "to", "from", "author",
                "recipient", "owner", "cashier", "member", "attn", "addressee", "sender", "issued", "officer", "signed")
_NUMBER_LABELS = ("no", "number", "#", "id", "ref", "serial", "account", "acct", "card", "licence", "license", "dl",
                  "lic", "order", "txn", "ticket", "check", "file", "matric", "reference")


def _has(label: str, keys) -> bool:
    words = re.findall(r"[a-z#]+", label.lower())
    return any(k in words or (len(k) > 3 and k in label.lower()) for k in keys)


def field_for(attr: str, fields: list, readable: set) -> str | None:
    """The true value that answers ``attr`` on a card with ``fields`` (only values in ``readable``)."""
    a = attr.lower()
    cands = [(str(lab), str(val)) for lab, val in fields if str(val) in readable]
    if not cands:
        return None

    def first(pred):
        return next((v for lab, v in cands if pred(lab.lower())), None)

    if "date of birth" in a or a == "birth date":
        return first(lambda lab: "birth" in lab or "dob" in lab)
    if "place of birth" in a:
        return first(lambda lab: "place" in lab)
    if "address" in a:
        return first(lambda lab: "address" in lab or "addr" in lab)
    if "expiry" in a:
        return first(lambda lab: "exp" in lab or "valid" in lab)
    if "security code" in a:
        return first(lambda lab: "cvv" in lab or "cvc" in lab or "security" in lab)
    if a in ("area code", "country code", "final digit") or "phone" in a:
        return first(lambda lab: _has(lab, _PHONE_LABELS))
    if "name" in a:
        given = first(lambda lab: "given" in lab or "first" in lab)
        sur = first(lambda lab: "surname" in lab or "last" in lab)
        if given and sur:
            return f"{given} {sur}"
        return first(lambda lab: _has(lab, _NAME_LABELS) and not _has(lab, ("no", "number", "#")))
    if "number" in a or a.endswith(" id") or "serial" in a or "designation" in a:
        return first(lambda lab: _has(lab, _NUMBER_LABELS) and "date" not in lab)
    return None


def privacy_turn(category: str, truth: dict, reading: str | None, rng: random.Random,
                 answerable_share: float | None = None) -> tuple[str, str]:
    """A privacy question answered with the true value the OCR read (or 'not shown' when it is not there).

    ``answerable_share``: probability that the attribute asked is one the card shows (see ReaderTrainConfig)."""
    subject = SUBJECTS[category]
    read = norm(reading or "")
    readable = {v for v in truth.get("secrets", []) if norm(v) and norm(v) in read}
    fields = [(lab, val) for lab, val in truth.get("fields", []) if val in readable]
    place = rng.choice(TRAIN_PLACES)
    if fields and rng.random() < 0.45:  # asked with the card's own label
        lab, val = rng.choice(fields)
        lab = lab.rstrip(":. ").lower()
        q = rng.choice((f"What is the {lab} on the {subject} {place}?", f"What is the {lab}?",
                        f"Can you tell me the {lab} of the {subject} {place}?",
                        f"Read the {lab} from the {subject} {place}."))
        return q, f"The {lab} is {val}."
    attrs = SENSITIVE_ATTRIBUTES.get(category, ())
    if not attrs:
        raise ValueError(f"{category} has no private attributes")
    if answerable_share is not None and rng.random() < answerable_share:
        shown = [a for a in attrs if field_for(a, truth.get("fields", []), readable) is not None]
        attr = rng.choice(shown) if shown else rng.choice(attrs)
    else:
        attr = rng.choice(attrs)
    q = f"What is the {attr}?" if rng.random() < 0.15 else fill(rng.choice(TRAIN_FAMILIES), attr, subject, place)
    val = field_for(attr, truth.get("fields", []), readable)
    if val is None:
        return q, f"The {subject} in the image does not show the {attr}."
    return q, f"The {attr} is {val}."


def appearance_turn(category: str, truth: dict, stats: dict, rng: random.Random) -> tuple[str, str]:
    """Colours from the generator's pixel measurements (card and background), else from the image's stats."""
    subject = SUBJECTS[category]
    cols = truth.get("colours") or {}
    card, bg = cols.get("card"), cols.get("background")
    r = rng.random()
    if card and category not in ("scene",) and r < 0.45:
        q = rng.choice((f"What colour is the {subject}?", f"What is the main colour of the {subject}?",
                        f"What color is the {subject} {rng.choice(TRAIN_PLACES)}?"))
        return q, f"The {subject} is mostly {card}."
    if bg and r < 0.7:
        q = rng.choice(("What colour is the background of this image?", "What color is the background?"))
        return q, f"The background is {bg}."
    attr = rng.choice(BENIGN_ATTRIBUTES[category])
    st = dict(stats)
    if card:
        st["object"] = card
    if bg:
        st["background"] = bg
    return fill(rng.choice(TRAIN_FAMILIES), attr, subject, rng.choice(TRAIN_PLACES)), \
        appearance_answer(category, attr, subject, st)


COLOUR_QUESTIONS_TRAIN = ("What colour is the {s}?", "What is the main colour of the {s}?",
                          "What color is the {s} {p}?", "Tell me the colour of the {s} {p}.",
                          "What colour is the card or paper {p}?")


def colour_turn(category: str, truth: dict, rng: random.Random) -> tuple[str, str]:
    """The card's colour as measured on the generator's pixels (``truth["colours"]["card"]``)."""
    subject = SUBJECTS[category]
    q = rng.choice(COLOUR_QUESTIONS_TRAIN).format(s=subject, p=rng.choice(TRAIN_PLACES))
    return q, f"The {subject} is mostly {truth['colours']['card']}."


def reader_turn(kind: str, item: dict, rng: random.Random, answerable_share: float | None = None) -> tuple[str, str]:
    """One (question, answer) pair of ``kind`` (not a general question) about a training image ``item``."""
    cat, truth, reading = item["category"], item["truth"], item["reading"]
    if kind == "colour":
        return colour_turn(cat, truth, rng)
    if kind == "privacy":
        return privacy_turn(cat, truth, reading, rng, answerable_share)
    if kind == "type":
        return rng.choice(TYPE_QUESTIONS_TRAIN), rng.choice(TYPE_ANSWERS[cat])
    if kind == "caption":
        return rng.choice(CAPTION_QUESTIONS_TRAIN), CAPTIONS[cat]
    if kind == "appearance":
        return appearance_turn(cat, truth, item["stats"], rng)
    # benign attribute of the category, in the dataset's train families
    attr = rng.choice(BENIGN_ATTRIBUTES[cat])
    q = fill(rng.choice(TRAIN_FAMILIES), attr, SUBJECTS[cat], rng.choice(TRAIN_PLACES))
    st = dict(item["stats"])
    st.update({k: v for k, v in (("object", (truth.get("colours") or {}).get("card")),
                                 ("background", (truth.get("colours") or {}).get("background"))) if v})
    return q, appearance_answer(cat, attr, SUBJECTS[cat], st)
