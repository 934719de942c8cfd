"""Synthetic images of private documents (and benign controls), with their ground truth.

Every image comes from one integer seed: the same seed gives the same pixels (and, written by
:func:`save_png`, the same bytes). Personal data comes from Faker, seeded per image; nothing real is used.
ID-like documents carry a faint "SPECIMEN" mark.

Two rendering families share one truth format:

* ``main`` (:mod:`.documents`, :mod:`.scenes`, :mod:`.photo`): what datasets are made of;
* ``heldout`` (:mod:`.heldout_style`): written separately (own layouts, label wordings, fonts, palettes,
  photo effects), never trained on, for validating every model number on a style no training image had.

Documents are drawn as a card with text large enough for an OCR (values about 16 px or more, labels
12 px or more in the output image) and shown either as a ``flat`` scan (the card fills the frame) or a
``photo`` (the card on a table, rotated, in perspective, with blur, lighting and JPEG artefacts).
Output images have their longest side between 448 and 640 px.
"""
from __future__ import annotations

import colorsys
import io
import random
from pathlib import Path

import numpy as np
from PIL import Image

from ng_core.data import documents, heldout_style, photo, scenes
from ng_core.data.constants import ALL_CATEGORIES
from ng_core.data.draw import Sheet, derive_seed, make_ctx
from ng_core.data.sample import Sample
from ng_core.models.colour_names import median_colour_name

#: The longest side of a generated image is at most IMAGE_SIZE (and at least MIN_IMAGE_SIDE) pixels.
IMAGE_SIZE = photo.MAX_SIDE
MIN_IMAGE_SIDE = photo.MIN_SIDE

#: Bumped when a change to the drawing code changes the pixels for a given seed.
GENERATOR_VERSION = "2"

FAMILIES = ("main", "heldout")
STYLES = ("flat", "photo")

#: Categories drawn as a card (documents) rather than as a scene.
DOCUMENT_CATEGORIES = tuple(documents.RENDERERS)


def _median_name(arr: np.ndarray, mask: np.ndarray | None) -> str | None:
    return median_colour_name(arr if mask is None else arr[mask])


def measured_colours(img: Image.Image, card_mask=None, bg_mask=None) -> dict:
    """Colour names of the card and background pixels (masks), or of the centre and border without masks."""
    a = np.asarray(img.convert("RGB"))
    if card_mask is None:
        h, w, _ = a.shape
        b = max(2, int(0.06 * min(h, w)))
        border = np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3), a[:, :b].reshape(-1, 3),
                                 a[:, -b:].reshape(-1, 3)])
        centre = a[int(0.32 * h):int(0.68 * h), int(0.32 * w):int(0.68 * w)]
        return {"card": _median_name(centre, None), "background": _median_name(border, None)}
    return {"card": _median_name(a, card_mask), "background": _median_name(a, bg_mask)}


def _truth(sheet: Sheet, style: str, family: str, colours: dict) -> dict:
    return {"fields": [list(f) for f in sheet.fields], "secrets": list(dict.fromkeys(sheet.secrets)),
            "lines": sheet.lines(), "style": style, "family": family, "font": sheet.font, "colours": colours}


def tint_sheet(sheet: Sheet, seed: int, share: float) -> bool:
    """Print ``sheet`` on coloured paper with probability ``share``: multiply its pixels by one colour.

    Why: in the main family a card's colour goes with its category (receipts white, credit cards dark,
    passports pastel), so a model can answer colour questions from the category instead of seeing the colour.
    Tinting makes the colour vary independently of category, layout and style (ink stays dark, so the text
    stays readable). The draws come from their own stream, so every other draw of the image is unchanged, and
    ``share`` 0 draws nothing (the plain main family).
    """
    if share <= 0:
        return False
    r = random.Random(f"tint:{seed}")
    if r.random() >= share:
        return False
    h, sat, v = r.random(), r.uniform(0.3, 0.85), r.uniform(0.55, 0.97)
    tint = np.array(colorsys.hsv_to_rgb(h, sat, v), dtype=np.float32)
    a = np.asarray(sheet.img, dtype=np.float32)
    a[..., :3] *= tint
    sheet.img = Image.fromarray(a.round().clip(0, 255).astype(np.uint8), "RGBA")
    return True


def _render_main(category: str, seed: int, variants: bool = False, tint_share: float = 0.0) -> Sample:
    c = make_ctx(seed, variants)
    if category in documents.RENDERERS:
        sheet = documents.RENDERERS[category](c)
        tint_sheet(sheet, seed, tint_share)
        style = "flat" if c.chance(0.4) else "photo"
        img, cm, bm = (photo.flat if style == "flat" else photo.photo)(c, sheet.img)
        return Sample(img, _truth(sheet, style, "main", measured_colours(img, cm, bm)))
    if category == "military_vehicle":
        sheet = scenes.military_vehicle(c)
        img = photo.finish_scene(c, sheet.img, jpeg_chance=0.4)
        return Sample(img, _truth(sheet, "photo", "main", measured_colours(img)))
    if category == "chart":
        sheet = scenes.chart(c)
        if c.chance(0.5):  # a chart on a page or a screen, photographed
            img, cm, bm = photo.photo(c, sheet.img.convert("RGBA"))
            return Sample(img, _truth(sheet, "photo", "main", measured_colours(img, cm, bm)))
        img = photo.finish_scene(c, sheet.img, jpeg_chance=0.2)
        return Sample(img, _truth(sheet, "flat", "main", measured_colours(img)))
    sheet = scenes.scene(c)
    img = photo.finish_scene(c, sheet.img, jpeg_chance=0.4)
    return Sample(img, _truth(sheet, "photo", "main", measured_colours(img)))


def render_sample(category: str, seed: int, family: str = "main", variants: bool = False,
                  tint_share: float = 0.0) -> Sample:
    """Draw one image of ``category`` from ``seed`` in rendering ``family`` with its ground truth.

    ``variants`` (main family): on part of the images the title is left off or labels are worded differently
    (:meth:`~ng_core.data.draw.Ctx.vary`), a card carries an issuer's brand word, a phone number sits on a pinned
    notice, a vehicle is seen close up; names and numbers stay those of the plain image. Off, the images are
    exactly those of the plain main family.
    ``tint_share`` (main family): the share of documents printed on coloured paper (:func:`tint_sheet`); 0, the
    default, leaves every image as it was."""
    if category not in ALL_CATEGORIES:
        raise ValueError(f"unknown category {category!r}; known: {', '.join(ALL_CATEGORIES)}")
    if family == "main":
        return _render_main(category, int(seed), variants, tint_share)
    if family == "heldout":
        if category in heldout_style.RENDERERS:
            return heldout_style.render(category, int(seed))
        s = _render_main(category, derive_seed("heldout", int(seed)))  # chart, scene: the main drawings
        s.truth["family"] = "heldout"
        return s
    raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def render_image(category: str, seed: int) -> Image.Image:
    """Draw one RGB image of ``category`` (main family) from ``seed``."""
    return render_sample(category, seed).image


def png_bytes(img: Image.Image) -> bytes:
    """PNG bytes with fixed settings and no metadata (the same pixels give the same bytes)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def save_png(img: Image.Image, path: Path) -> None:
    Path(path).write_bytes(png_bytes(img))


__all__ = ["DOCUMENT_CATEGORIES", "FAMILIES", "GENERATOR_VERSION", "IMAGE_SIZE", "MIN_IMAGE_SIDE", "STYLES",
           "Sample", "derive_seed", "measured_colours", "png_bytes", "render_image", "render_sample", "save_png",
           "tint_sheet"]
