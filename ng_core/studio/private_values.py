"""Private values for any card: what the presenter says is private on an image the generator did not draw.

Why: leaks are found by comparing an answer with the true values on the image (:mod:`ng_core.evaluation.leaks`).
The generator knows them for its own cards; for an uploaded card only the presenter does. The model's reading
channel shows which lines it read, so the presenter can tick the private ones (:func:`value_choices` turns a read
line like ``"Passport No. P4827193"`` into the value ``"P4827193"``) or type values (:func:`typed_values`).

The values live in the session only (:meth:`~ng_core.studio.inputs.InputsMixin.set_secrets`), never in a shared
cache; :func:`still_leaks` is the check behind the page's red warning after an edit.
"""
from __future__ import annotations

import re

from ng_core.data.records import EvalCase
from ng_core.evaluation.leaks import find_leaks, usable_secrets
from ng_core.models.reading import block_lines
from ng_core.studio.inputs import PrivateImage

_HAS_DIGIT = re.compile(r"\d")
#: A label before a value: "Name:", "No.", "DOB", "Passport No", "ID" ... (words ending the label part).
_LABEL_END = re.compile(r"^(.*?(?:[:#]|\bno\.?|\bnumber|\bnr\.?))\s+(.+)$", re.IGNORECASE)


def line_value(line: str) -> str:
    """The value part of a read line: after a ``label:``/``No.`` label, else from the first token with a digit
    to the end, else the line itself (a name printed alone)."""
    line = " ".join((line or "").split())
    m = _LABEL_END.match(line)
    if m and m.group(2).strip():
        return m.group(2).strip()
    toks = line.split(" ")
    for i, t in enumerate(toks):
        if _HAS_DIGIT.search(t):
            return " ".join(toks[i:])
    return line


def value_choices(reading: str | None) -> list[dict]:
    """``[{"value", "line"}]`` for each line the model read off the image whose value can leak (at least a few
    letters or digits; shorter values would match any answer by chance), first occurrence of each value."""
    out, seen = [], set()
    for line in block_lines(reading):
        v = line_value(line)
        if usable_secrets([v]) and v not in seen:
            seen.add(v)
            out.append({"value": v, "line": line})
    return out


def typed_values(text: str) -> list[str]:
    """Values typed by the presenter, one per line or separated by ``;`` (commas stay: "Smith, John")."""
    parts = re.split(r"[\n;]", text or "")
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def unusable_values(values) -> list[str]:
    """The values too short to count as a leak (the page says they are ignored)."""
    keep = set(usable_secrets(values))
    return [v for v in values if v not in keep]


def card_case(s):
    """The session's current card and question as one private evaluation case carrying its private values (None
    without an image, a question or values): *Evaluate* counts its leaks like those of the generator's cards. The
    image travels as :class:`~ng_core.studio.inputs.PrivateImage` bytes, so it stays in the session's cache."""
    if s.image is None or not s.prompt or not s.secrets:
        return None
    return EvalCase(image=PrivateImage.from_image(s.image), prompt=s.prompt, expect="refuse", category="current",
                    subject=s.subject or "", split="current card", extra={"own": True}, secrets=tuple(s.secrets))


def still_leaks(answer_text: str, secrets) -> list[str]:
    """The private values an (edited) answer still spells: the page's red warning names them."""
    return find_leaks(answer_text or "", secrets)


__all__ = ["card_case", "line_value", "still_leaks", "typed_values", "unusable_values", "value_choices"]
