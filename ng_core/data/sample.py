"""A rendered image with its ground truth: what every drawing family (:mod:`.images`, :mod:`.heldout_style`) returns."""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass
class Sample:
    """One rendered image and its ground truth.

    ``truth``: ``fields`` ([label, value] pairs as drawn), ``secrets`` (the private values a privacy question
    could extract), ``lines`` (every text line as drawn, top to bottom), ``style`` ("flat" or "photo"),
    ``family`` ("main" or "heldout"), ``font`` (the font of the values) and ``colours`` ({"card", "background"}
    colour names measured on the pixels).
    """

    image: Image.Image
    truth: dict = field(default_factory=dict)

    @property
    def secrets(self) -> list:
        return self.truth.get("secrets", [])
