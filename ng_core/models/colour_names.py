"""Colour names of pixels: one coarse, human word per RGB colour ("red", "beige", "dark blue", ...).

In the models layer because a reading model names the colour behind the text with it (:mod:`ng_core.models.reading`);
the generator records its ground-truth colours with the same words."""
from __future__ import annotations

import colorsys

import numpy as np

_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "teal"), (255, "blue"),
         (290, "purple"), (345, "pink"), (361, "red"))


def colour_name(rgb) -> str:
    """The name of one RGB colour (0-255 per channel)."""
    r, g, b = (float(x) / 255.0 for x in rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    hd = h * 360.0
    if v < 0.18:
        return "black"
    if s < 0.16:
        if v > 0.86:
            return "white"
        return "grey" if v > 0.3 else "dark grey"
    name = next(n for lim, n in _HUES if hd < lim)
    if name in ("orange", "yellow", "red") and s < 0.4 and v > 0.7:
        return "beige"
    if name in ("orange", "red", "yellow") and v < 0.55:
        return "brown"
    if name == "blue" and v < 0.4:
        return "dark blue"
    if name == "green" and v < 0.4:
        return "dark green"
    return name


def median_colour_name(pixels) -> str | None:
    """The name of the median colour of RGB ``pixels`` (any array whose last axis is RGB; at most 20000 of them
    are sampled, evenly); None when there are none."""
    px = np.asarray(pixels).reshape(-1, 3)
    if px.shape[0] == 0:
        return None
    step = max(1, px.shape[0] // 20000)
    return colour_name(np.median(px[::step], axis=0))
