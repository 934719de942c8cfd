"""Synthetic images of private documents (and benign controls), drawn with Pillow from fake data.

Every image comes from one integer seed: the same seed gives the same pixels (and, written by
:func:`save_png`, the same bytes). Personal data comes from Faker, seeded per image; nothing real is used.
ID-like documents carry a faint "SPECIMEN" mark.

Images are drawn at twice the output size and scaled down (smooth edges), on a random background,
with a random position, size, rotation, palette, text style and noise, so that no two images share a layout.
"""
from __future__ import annotations

import hashlib
import io
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from .constants import ALL_CATEGORIES

#: Output size of the generated images (square).
IMAGE_SIZE = 224
_SCALE = 2
_C = IMAGE_SIZE * _SCALE  # drawing canvas

#: Bumped when a change to the drawing code changes the pixels for a given seed.
GENERATOR_VERSION = "1"

TEXT_STYLES = ("sans", "bold", "italic", "condensed", "pixel")


# --------------------------------------------------------------------------- seeds and context

def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any parts (independent of Python's hash randomisation)."""
    h = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") >> 1


@lru_cache(maxsize=1)
def _faker():
    from faker import Faker

    return Faker("en_US")


@dataclass
class Ctx:
    rng: random.Random
    np: np.random.Generator
    fake: object
    style: str  # body text style for this image

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]


def _ctx(seed: int) -> Ctx:
    fake = _faker()
    fake.seed_instance(seed)
    rng = random.Random(seed)
    return Ctx(rng, np.random.default_rng(seed), fake, rng.choice(TEXT_STYLES))


# --------------------------------------------------------------------------- text

@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=1)
def _bitmap_font():
    return ImageFont.load_default_imagefont()


def text_mask(text: str, size: int, style: str = "sans") -> Image.Image:
    """An "L" mask of ``text`` about ``size`` pixels tall in one of TEXT_STYLES."""
    size = max(6, int(size))
    if style == "pixel":
        f = _bitmap_font()
        l, t, r, b = f.getbbox(text)
        m = Image.new("L", (max(1, r), max(1, b)), 0)
        ImageDraw.Draw(m).text((0, 0), text, fill=255, font=f)
        k = size / 11.0
        return m.resize((max(1, round(m.width * k)), max(1, round(m.height * k))), Image.NEAREST)
    f = _font(size)
    stroke = max(1, size // 14) if style == "bold" else 0
    l, t, r, b = f.getbbox(text, stroke_width=stroke)
    w, h = max(1, r - l + 2), max(1, b - t + 2)
    m = Image.new("L", (w, h), 0)
    ImageDraw.Draw(m).text((-l + 1, -t + 1), text, fill=255, font=f, stroke_width=stroke, stroke_fill=255)
    if style == "italic":
        sh = 0.22
        m = m.transform((w + int(h * sh) + 1, h), Image.AFFINE, (1, sh, -h * sh, 0, 1, 0), Image.BICUBIC)
    elif style == "condensed":
        m = m.resize((max(1, int(w * 0.78)), h), Image.BICUBIC)
    return m


def text_width(text: str, size: int, style: str = "sans") -> int:
    """About the width ``text_mask`` would have, without drawing (for line wrapping)."""
    size = max(6, int(size))
    if style == "pixel":
        return round(_bitmap_font().getbbox(text)[2] * size / 11.0)
    w = _font(size).getlength(text) + 2
    if style == "condensed":
        w *= 0.78
    elif style == "italic":
        w += size * 0.25
    elif style == "bold":
        w += 2 * max(1, size // 14)
    return int(w)


def put_text(img: Image.Image, xy, text: str, size: int, fill, style: str = "sans", anchor: str = "l",
             max_width: int | None = None) -> tuple[int, int]:
    """Paste ``text`` on ``img`` at ``xy`` (top-left, top-centre "m" or top-right "r"); returns its size."""
    m = text_mask(text, size, style)
    if max_width and m.width > max_width:
        m = m.resize((max(1, max_width), m.height), Image.BICUBIC)
    x, y = int(xy[0]), int(xy[1])
    if anchor == "m":
        x -= m.width // 2
    elif anchor == "r":
        x -= m.width
    layer = Image.new(img.mode, m.size, fill)
    img.paste(layer, (x, y), m)
    return m.size


# --------------------------------------------------------------------------- colours and helpers

def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0, min(1, s)), max(0, min(1, v)))
    return int(r * 255), int(g * 255), int(b * 255)


def pastel(c: Ctx) -> tuple[int, int, int]:
    return _hsv(c.rng.random(), c.rng.uniform(0.08, 0.3), c.rng.uniform(0.88, 0.99))


def deep(c: Ctx) -> tuple[int, int, int]:
    return _hsv(c.rng.random(), c.rng.uniform(0.5, 0.9), c.rng.uniform(0.25, 0.6))


def vivid(c: Ctx) -> tuple[int, int, int]:
    return _hsv(c.rng.random(), c.rng.uniform(0.55, 0.95), c.rng.uniform(0.6, 0.95))


def shade(col, k: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(v * k))) for v in col[:3])


def ink(c: Ctx) -> tuple[int, int, int]:
    return c.pick([(20, 20, 25), (30, 30, 60), (45, 35, 30), (15, 40, 80), (55, 55, 55)])


def rounded_card(size, radius: int, fill) -> Image.Image:
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(img).rounded_rectangle([0, 0, size[0] - 1, size[1] - 1], radius=radius, fill=fill)
    return img


def guilloche(img: Image.Image, c: Ctx, col, n: int = 6) -> None:
    """Wavy security lines across a document."""
    d = ImageDraw.Draw(img)
    w, h = img.size
    for k in range(n):
        amp = c.rng.uniform(4, 14)
        per = c.rng.uniform(30, 90)
        ph = c.rng.uniform(0, 6.3)
        y0 = h * (k + 0.5) / n
        pts = [(x, y0 + amp * math.sin(x / per * 6.283 + ph)) for x in range(0, w + 8, 8)]
        d.line(pts, fill=col, width=1)


def face(img: Image.Image, box, c: Ctx) -> None:
    """A generic head-and-shoulders photo (no real person), clipped to ``box``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = x1 - x0, y1 - y0
    ph = Image.new("RGB", (w, h), c.pick([(205, 220, 235), (230, 230, 230), (245, 245, 240), (200, 210, 200)]))
    d = ImageDraw.Draw(ph)
    skin = c.pick([(241, 194, 160), (224, 172, 135), (198, 134, 94), (141, 85, 56), (255, 219, 180)])
    hair = c.pick([(30, 25, 20), (90, 60, 30), (160, 120, 60), (200, 180, 120), (70, 70, 70)])
    cloth = deep(c)
    cx = w / 2
    d.ellipse([w * 0.1, h * 0.74, w * 0.9, h * 1.4], fill=cloth)
    d.rectangle([cx - w * 0.09, h * 0.55, cx + w * 0.09, h * 0.78], fill=skin)
    hw, hh = w * c.rng.uniform(0.2, 0.26), h * c.rng.uniform(0.22, 0.27)
    cy = h * 0.42
    d.ellipse([cx - hw - 2, cy - hh - 6, cx + hw + 2, cy + hh * 0.3], fill=hair)
    d.ellipse([cx - hw, cy - hh, cx + hw, cy + hh], fill=skin)
    if c.chance(0.5):
        d.pieslice([cx - hw - 2, cy - hh - 8, cx + hw + 2, cy + hh * 0.6], 180, 360, fill=hair)
    ey = cy - hh * 0.1
    for ex in (cx - hw * 0.4, cx + hw * 0.4):
        d.ellipse([ex - 2, ey - 2, ex + 2, ey + 2], fill=(30, 30, 30))
    d.line([cx - hw * 0.3, cy + hh * 0.5, cx + hw * 0.3, cy + hh * 0.5], fill=shade(skin, 0.7), width=2)
    d.rectangle([0, 0, w - 1, h - 1], outline=(120, 120, 120), width=1)
    img.paste(ph, (x0, y0))


def barcode(img: Image.Image, box, c: Ctx, col=(0, 0, 0)) -> None:
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    x = x0
    while x < x1:
        wbar = c.rng.choice((1, 2, 2, 3, 4))
        if c.chance(0.55):
            d.rectangle([x, y0, min(x1, x + wbar - 1), y1], fill=col)
        x += wbar


def signature(img: Image.Image, box, c: Ctx, col=(20, 30, 90)) -> None:
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    n = 40
    a1, a2 = c.rng.uniform(2, 5), c.rng.uniform(5, 11)
    p1, p2 = c.rng.uniform(0, 6), c.rng.uniform(0, 6)
    pts = []
    for i in range(n):
        t = i / (n - 1)
        x = x0 + (x1 - x0) * (t + 0.04 * math.sin(a2 * 6.28 * t + p2))
        y = (y0 + y1) / 2 + (y1 - y0) / 2 * 0.9 * math.sin(a1 * 6.28 * t + p1) * math.cos(a2 * 3.14 * t)
        pts.append((x, y))
    d.line(pts, fill=col, width=2, joint="curve")


def specimen(img: Image.Image, c: Ctx) -> None:
    """A faint "SPECIMEN" mark across an ID-like document."""
    m = text_mask("SPECIMEN", max(14, img.height // 7), "bold")
    m = m.rotate(c.rng.uniform(-25, 25), expand=True, resample=Image.BICUBIC)
    m = m.point(lambda v: v * 40 // 255)
    x = (img.width - m.width) // 2 + c.rng.randint(-20, 20)
    y = (img.height - m.height) // 2 + c.rng.randint(-15, 15)
    img.paste(Image.new(img.mode, m.size, (200, 30, 30, 255)), (x, y), m)


def _fake_number(c: Ctx, pattern: str) -> str:
    """'#' -> digit, '?' -> capital letter."""
    out = []
    for ch in pattern:
        if ch == "#":
            out.append(str(c.rng.randrange(10)))
        elif ch == "?":
            out.append(chr(65 + c.rng.randrange(26)))
        else:
            out.append(ch)
    return "".join(out)


def _phone(c: Ctx) -> str:
    return _fake_number(c, c.pick(["(###) ###-####", "###-###-####", "+1 ### ### ####", "### ### ####",
                                   "+44 #### ######", "0### ### ###"]))


def _date(c: Ctx, start: int = 1950, end: int = 2006) -> str:
    y, m, d = c.rng.randint(start, end), c.rng.randint(1, 12), c.rng.randint(1, 28)
    months = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
    return c.pick([f"{d:02d} {months[m - 1]} {y}", f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}"])


# --------------------------------------------------------------------------- backgrounds and placement

def background(c: Ctx, size=(_C, _C)) -> Image.Image:
    w, h = size
    kind = c.pick(["solid", "gradient", "wood", "speckle", "cloth"])
    base = np.array(c.pick([pastel(c), deep(c), (c.rng.randint(60, 200),) * 3]), dtype=np.float32)
    if kind == "solid":
        arr = np.broadcast_to(base, (h, w, 3)).copy()
    elif kind == "gradient":
        other = np.array(pastel(c) if c.chance(0.5) else deep(c), dtype=np.float32)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        arr = base * (1 - t) + other * t
        arr = np.broadcast_to(arr, (h, w, 3)).copy()
    elif kind == "wood":
        wood = np.array(c.pick([(150, 100, 60), (120, 80, 45), (181, 137, 90), (95, 65, 40)]), dtype=np.float32)
        y = np.arange(h, dtype=np.float32)[:, None]
        x = np.arange(w, dtype=np.float32)[None, :]
        f1, f2 = c.rng.uniform(0.05, 0.12), c.rng.uniform(0.005, 0.02)
        grain = 0.85 + 0.12 * np.sin(y * f1 + 3 * np.sin(x * f2 + c.rng.uniform(0, 6)))
        arr = wood[None, None, :] * grain[:, :, None]
        if c.chance(0.5):
            arr = arr.transpose(1, 0, 2).copy()
    elif kind == "speckle":
        arr = np.broadcast_to(base, (h, w, 3)).copy()
        arr += c.np.normal(0, 18, size=(h, w, 1)).astype(np.float32)
    else:  # cloth: woven pattern
        y = np.arange(h)[:, None]
        x = np.arange(w)[None, :]
        pat = ((x // 3 + y // 3) % 2).astype(np.float32) * 14 - 7
        arr = base[None, None, :] + pat[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def place(c: Ctx, obj: Image.Image, max_angle: float = 12.0, fill_range=(0.62, 0.95),
          bg: Image.Image | None = None) -> Image.Image:
    """Scale, rotate and drop ``obj`` (RGBA) with a shadow on a background canvas."""
    canvas = bg if bg is not None else background(c)
    angle = c.rng.uniform(-max_angle, max_angle) if c.chance(0.85) else 0.0
    if c.chance(0.08):
        angle += 90 * c.pick([-1, 1])
    rot = obj.rotate(angle, resample=Image.BICUBIC, expand=True)
    target = c.rng.uniform(*fill_range) * _C
    k = target / max(rot.width, rot.height)
    rot = rot.resize((max(1, int(rot.width * k)), max(1, int(rot.height * k))), Image.LANCZOS)
    x = c.rng.randint(min(0, _C - rot.width), max(0, _C - rot.width))
    y = c.rng.randint(min(0, _C - rot.height), max(0, _C - rot.height))
    alpha = rot.getchannel("A")
    shadow = alpha.point(lambda v: v * 90 // 255).filter(ImageFilter.GaussianBlur(5))
    off = c.rng.randint(3, 9)
    canvas.paste(Image.new("RGB", rot.size, (0, 0, 0)), (x + off, y + off), shadow)
    canvas.paste(rot.convert("RGB"), (x, y), alpha)
    return canvas


def finish(c: Ctx, img: Image.Image) -> Image.Image:
    """Scale to the output size and add lighting, blur and noise."""
    img = img.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    if c.chance(0.3):
        img = img.filter(ImageFilter.GaussianBlur(c.rng.uniform(0.3, 0.8)))
    arr = np.asarray(img, dtype=np.float32)
    gain = c.rng.uniform(0.85, 1.12)
    bias = c.rng.uniform(-12, 12)
    arr = arr * gain + bias
    if c.chance(0.4):  # uneven lighting
        yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / IMAGE_SIZE
        gx, gy = c.rng.uniform(-25, 25), c.rng.uniform(-25, 25)
        arr += (xx - 0.5)[:, :, None] * gx + (yy - 0.5)[:, :, None] * gy
    sigma = c.rng.uniform(0.0, 6.0)
    if sigma > 0.5:
        arr += c.np.normal(0.0, sigma, size=arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------- private documents

def _passport(c: Ctx) -> Image.Image:
    f = c.fake
    country = f.country()
    if c.chance(0.3):  # the cover of the booklet
        w, h = c.rng.randint(250, 290), c.rng.randint(350, 400)
        col = c.pick([(20, 35, 80), (110, 20, 35), (25, 70, 45), (25, 25, 30), deep(c)])
        card = rounded_card((w, h), 14, col + (255,))
        gold = c.pick([(212, 175, 55), (230, 200, 120), (200, 200, 200)])
        put_text(card, (w // 2, 30), country.upper()[:22], 20, gold, "bold", "m", max_width=w - 30)
        d = ImageDraw.Draw(card)
        cx, cy, r = w // 2, h // 2 - 10, c.rng.randint(48, 64)
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=gold, width=4)
        n = c.pick([5, 6, 8])
        pts = []
        for i in range(2 * n):
            rr = r * (0.75 if i % 2 == 0 else 0.32)
            a = math.pi * i / n - math.pi / 2
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=gold)
        put_text(card, (w // 2, h - 90), "PASSPORT", 30, gold, "bold", "m")
        d.rounded_rectangle([w // 2 - 16, h - 45, w // 2 + 16, h - 25], radius=3, outline=gold, width=2)
        d.ellipse([w // 2 - 6, h - 41, w // 2 + 6, h - 29], outline=gold, width=2)
        specimen(card, c)
        return card
    w, h = c.rng.randint(400, 440), c.rng.randint(280, 310)
    bgc = pastel(c)
    card = rounded_card((w, h), 8, bgc + (255,))
    guilloche(card, c, shade(bgc, 0.88) + (255,), n=c.rng.randint(5, 10))
    tx = ink(c)
    hdr = deep(c)
    put_text(card, (16, 10), "PASSPORT", 24, hdr, "bold")
    put_text(card, (w - 16, 14), country.upper()[:24], 16, hdr, "bold", "r", max_width=w // 2)
    photo_left = c.chance(0.75)
    pw, ph = 104, 136
    px = 16 if photo_left else w - 16 - pw
    face(card, (px, 48, px + pw, 48 + ph), c)
    fx = px + pw + 14 if photo_left else 16
    last, first = f.last_name(), f.first_name()
    number = _fake_number(c, c.pick(["?########", "??#######", "#########"]))
    fields = [("Passport No.", number), ("Surname", last.upper()), ("Given names", first.upper()),
              ("Nationality", country.upper()[:20]), ("Date of birth", _date(c)), ("Place of birth", f.city()),
              ("Date of expiry", _date(c, 2026, 2036))]
    y = 46
    for label, value in fields[: c.rng.randint(5, 7)]:
        put_text(card, (fx, y), label, 11, (110, 110, 120), "sans")
        put_text(card, (fx, y + 12), value, 15, tx, c.style, max_width=w - fx - 12)
        y += 33
    signature(card, (px + 6, 48 + ph + 8, px + pw - 6, 48 + ph + 30), c)
    d = ImageDraw.Draw(card)
    d.rectangle([0, h - 46, w, h], fill=(245, 245, 240, 255))
    mrz1 = f"P<{country[:3].upper()}{last.upper()}<<{first.upper()}".ljust(44, "<")[:44]
    mrz2 = f"{number}<{c.rng.randrange(10)}{country[:3].upper()}{c.rng.randint(100000, 999999)}".ljust(44, "<")[:44]
    put_text(card, (10, h - 42), mrz1, 14, (30, 30, 30), "pixel", max_width=w - 20)
    put_text(card, (10, h - 22), mrz2, 14, (30, 30, 30), "pixel", max_width=w - 20)
    specimen(card, c)
    return card


def _phone_number(c: Ctx) -> Image.Image:
    f = c.fake
    num = _phone(c)
    kind = c.pick(["card", "screen", "note", "sign"])
    if kind == "card":  # a business card
        w, h = c.rng.randint(380, 430), c.rng.randint(220, 250)
        bgc = pastel(c) if c.chance(0.7) else (250, 250, 250)
        card = rounded_card((w, h), 6, bgc + (255,))
        acc = vivid(c)
        d = ImageDraw.Draw(card)
        if c.chance(0.5):
            d.rectangle([0, 0, 14, h], fill=acc)
        else:
            d.rectangle([0, h - 16, w, h], fill=acc)
        put_text(card, (30, 26), f.name(), 26, ink(c), "bold")
        put_text(card, (30, 62), f.job()[:34], 15, (90, 90, 90), c.style)
        put_text(card, (30, 120), "Tel: " + num, 24, acc if c.chance(0.4) else ink(c), c.style)
        put_text(card, (30, 156), f.free_email(), 14, (80, 80, 80), "sans")
        put_text(card, (30, 176), f.street_address(), 14, (80, 80, 80), "sans", max_width=w - 40)
        return card
    if kind == "screen":  # a phone showing the number in its dialer
        w, h = c.rng.randint(200, 230), c.rng.randint(390, 420)
        body = c.pick([(20, 20, 22), (230, 230, 235), (60, 60, 70), deep(c)])
        card = rounded_card((w, h), 30, body + (255,))
        d = ImageDraw.Draw(card)
        scr = (250, 250, 252) if c.chance(0.6) else (25, 28, 35)
        txt = (20, 20, 20) if scr[0] > 128 else (235, 235, 235)
        d.rounded_rectangle([10, 30, w - 10, h - 30], radius=12, fill=scr)
        d.ellipse([w // 2 - 5, 12, w // 2 + 5, 22], fill=(90, 90, 90))
        put_text(card, (w // 2, 62), f.first_name(), 16, txt, "sans", "m")
        put_text(card, (w // 2, 90), num, 22, txt, c.style, "m", max_width=w - 28)
        for r in range(4):
            for col in range(3):
                cx, cy = w // 2 + (col - 1) * 50, 160 + r * 48
                d.ellipse([cx - 18, cy - 18, cx + 18, cy + 18], fill=shade(scr, 0.9) if scr[0] > 128 else (60, 64, 75))
                lab = "123456789*0#"[r * 3 + col]
                put_text(card, (cx, cy - 9), lab, 16, txt, "sans", "m")
        d.ellipse([w // 2 - 22, h - 84, w // 2 + 22, h - 40], fill=(40, 190, 80))
        return card
    if kind == "note":  # a sticky note
        s = c.rng.randint(260, 320)
        col = c.pick([(255, 240, 120), (255, 200, 220), (190, 240, 200), (180, 220, 255), (255, 215, 150)])
        card = rounded_card((s, s), 3, col + (255,))
        d = ImageDraw.Draw(card)
        d.rectangle([0, 0, s, 26], fill=shade(col, 0.93) + (255,))
        pen = c.pick([(20, 40, 140), (20, 20, 20), (160, 20, 30)])
        put_text(card, (24, 56), c.pick(["Call ", "Ring ", "Phone ", ""]) + f.first_name(), 30, pen, "italic")
        put_text(card, (24, 120), num, 30, pen, c.pick(["italic", "bold", "sans"]), max_width=s - 40)
        if c.chance(0.6):
            put_text(card, (24, 190), c.pick(["after 6pm", "re: flat", "urgent", "tomorrow", "dentist"]), 22, pen,
                     "italic")
        return card
    # a shop sign
    w, h = c.rng.randint(400, 440), c.rng.randint(170, 220)
    col = vivid(c)
    card = rounded_card((w, h), 10, col + (255,))
    d = ImageDraw.Draw(card)
    d.rounded_rectangle([8, 8, w - 8, h - 8], radius=8, outline=(255, 255, 255), width=3)
    fg = (255, 255, 255) if sum(col) < 450 else (20, 20, 20)
    put_text(card, (w // 2, 24), f.company()[:26].upper(), 20, fg, "bold", "m", max_width=w - 40)
    put_text(card, (w // 2, 62), c.pick(["CALL NOW", "BOOK TODAY", "FOR RENT", "24/7 SERVICE"]), 18, fg, "sans", "m")
    put_text(card, (w // 2, 98), num, 40, fg, "bold", "m", max_width=w - 40)
    return card


def _receipt(c: Ctx) -> Image.Image:
    f = c.fake
    w, h = c.rng.randint(230, 300), c.rng.randint(400, 440)
    paper = c.pick([(252, 252, 248), (245, 243, 235), (255, 255, 255), (240, 240, 245)])
    card = Image.new("RGBA", (w, h), paper + (255,))
    d = ImageDraw.Draw(card)
    for x in range(0, w, 12):  # torn bottom edge
        d.polygon([(x, h), (x + 6, h - 7), (x + 12, h)], fill=(0, 0, 0, 0))
    tx = c.pick([(30, 30, 30), (50, 50, 70), (70, 60, 60)])
    centre = c.chance(0.7)
    ax, anc = (w // 2, "m") if centre else (14, "l")
    y = 12
    put_text(card, (ax, y), f.company()[:22].upper(), 18, tx, "bold", anc, max_width=w - 20)
    y += 26
    put_text(card, (ax, y), f.street_address()[:30], 11, tx, c.style, anc, max_width=w - 20)
    y += 16
    put_text(card, (ax, y), f"{f.city()}  {_date(c, 2019, 2025)}", 11, tx, c.style, anc, max_width=w - 20)
    y += 22
    d.line([10, y, w - 10, y], fill=tx, width=1)
    y += 8
    total = 0.0
    for _ in range(c.rng.randint(3, 8)):
        item = c.pick(["COFFEE", "BREAD", "MILK", "APPLES", "PASTA", "RICE", "TEA", "SOAP", "BATTERIES", "PEN",
                       "NOTEBOOK", "JUICE", "CHEESE", "EGGS", "SALAD", "SANDWICH", "WATER", "CHOCOLATE"])
        price = c.rng.randint(50, 2500) / 100
        total += price
        put_text(card, (14, y), item, 12, tx, c.style)
        put_text(card, (w - 14, y), f"{price:.2f}", 12, tx, c.style, "r")
        y += 18
    y += 4
    d.line([10, y, w - 10, y], fill=tx, width=1)
    y += 8
    put_text(card, (14, y), "TOTAL", 16, tx, "bold")
    put_text(card, (w - 14, y), f"{total:.2f}", 16, tx, "bold", "r")
    y += 28
    put_text(card, (14, y), c.pick(["VISA", "CARD", "DEBIT", "CREDIT"]) + " **** " + _fake_number(c, "####"), 12, tx,
             c.style)
    y += 18
    put_text(card, (14, y), "CARDHOLDER: " + f.name().upper(), 11, tx, c.style, max_width=w - 24)
    y += 22
    if y < h - 60:
        barcode(card, (20, y, w - 20, min(h - 30, y + 34)), c, tx)
        y += 40
    if y < h - 24:
        put_text(card, (w // 2, y), c.pick(["THANK YOU", "PLEASE COME AGAIN", "HAVE A NICE DAY"]), 11, tx, "sans", "m")
    return card


def _student_id(c: Ctx) -> Image.Image:
    f = c.fake
    portrait = c.chance(0.3)
    w, h = (250, 390) if portrait else (420, 265)
    bgc = (250, 250, 250) if c.chance(0.5) else pastel(c)
    card = rounded_card((w, h), 16, bgc + (255,))
    d = ImageDraw.Draw(card)
    hc = deep(c) if c.chance(0.6) else vivid(c)
    hh = 62 if not portrait else 70
    d.rounded_rectangle([0, 0, w - 1, hh], radius=16, fill=hc)
    d.rectangle([0, hh - 16, w - 1, hh], fill=hc)
    school = c.pick([f"{f.city()} University", f"University of {f.city()}", f"{f.last_name()} College",
                     f"{f.city()} Institute"])
    put_text(card, (w // 2, 10), school.upper(), 17, (255, 255, 255), "bold", "m", max_width=w - 20)
    put_text(card, (w // 2, 36), "STUDENT ID", 16, (255, 255, 255), "sans", "m")
    tx = ink(c)
    sid = _fake_number(c, c.pick(["########", "S#######", "##-####-##"]))
    rows = [("Name", f.name()), ("Student No.", sid), ("Date of birth", _date(c, 1995, 2007)),
            ("Program", c.pick(["Biology", "History", "Engineering", "Law", "Music", "Physics", "Economics"])),
            ("Valid until", _date(c, 2025, 2030))]
    if portrait:
        face(card, (w // 2 - 55, hh + 12, w // 2 + 55, hh + 152), c)
        y = hh + 162
        for label, value in rows[:4]:
            put_text(card, (16, y), f"{label}: {value}", 13, tx, c.style, max_width=w - 30)
            y += 22
        barcode(card, (24, h - 44, w - 24, h - 16), c)
    else:
        face(card, (16, hh + 14, 126, hh + 154), c)
        y = hh + 12
        for label, value in rows:
            put_text(card, (142, y), label, 10, (110, 110, 110), "sans")
            put_text(card, (142, y + 11), value, 15, tx, c.style, max_width=w - 152)
            y += 30
        barcode(card, (142, h - 34, w - 20, h - 12), c)
    specimen(card, c)
    return card


def _document(c: Ctx) -> Image.Image:
    f = c.fake
    w, h = c.rng.randint(300, 340), c.rng.randint(400, 440)
    paper = c.pick([(255, 255, 255), (250, 248, 240), (245, 245, 250), (240, 236, 222)])
    card = Image.new("RGBA", (w, h), paper + (255,))
    d = ImageDraw.Draw(card)
    tx = ink(c)
    head_col = deep(c) if c.chance(0.5) else tx
    m = c.rng.randint(18, 30)
    y = 16
    put_text(card, (m, y), f.company()[:30], 13, head_col, "bold", max_width=w - 2 * m)
    y += 18
    d.line([m, y, w - m, y], fill=head_col, width=2)
    y += 12
    title = c.pick(["MEMORANDUM", "CONFIDENTIAL REPORT", "INTERNAL NOTICE", "LETTER", "BRIEFING", "CONTRACT"])
    centred = c.chance(0.6)
    put_text(card, (w // 2 if centred else m, y), title, 20, head_col, "bold", "m" if centred else "l",
             max_width=w - 2 * m)
    y += 32
    for label, value in [("To", f.name()), ("From", f.name()), ("Date", _date(c, 2015, 2025)),
                         ("Ref", _fake_number(c, "??-####/##"))][: c.rng.randint(2, 4)]:
        put_text(card, (m, y), f"{label}: {value}", 11, tx, c.style, max_width=w - 2 * m)
        y += 15
    y += 8
    size = c.rng.randint(9, 11)
    for _ in range(c.rng.randint(2, 4)):
        if y > h - 70:
            break
        words = f.paragraph(nb_sentences=c.rng.randint(2, 4)).split()
        line = ""
        for wd in words:
            cand = (line + " " + wd).strip()
            if text_width(cand, size, c.style) > w - 2 * m:
                put_text(card, (m, y), line, size, tx, c.style)
                y += size + 4
                line = wd
                if y > h - 70:
                    break
            else:
                line = cand
        if line and y <= h - 70:
            put_text(card, (m, y), line, size, tx, c.style)
            y += size + 4
        y += 8
    signature(card, (m, h - 58, m + 110, h - 30), c)
    put_text(card, (m, h - 26), f.name(), 10, tx, "sans")
    if c.chance(0.6):  # a stamp
        st = Image.new("RGBA", (170, 60), (0, 0, 0, 0))
        sd = ImageDraw.Draw(st)
        red = c.pick([(200, 30, 40), (40, 60, 170), (30, 130, 60)])
        sd.rectangle([2, 2, 167, 57], outline=red + (200,), width=4)
        put_text(st, (85, 16), c.pick(["CONFIDENTIAL", "SECRET", "APPROVED", "RESTRICTED"]), 20, red + (200,),
                 "bold", "m", max_width=150)
        st = st.rotate(c.rng.uniform(-30, 30), expand=True, resample=Image.BICUBIC)
        card.alpha_composite(st, (c.rng.randint(w // 3, max(w // 3, w - st.width - 5)), c.rng.randint(h // 3, h - 140)))
    return card


# --------------------------------------------------------------------------- military vehicles

def _terrain(c: Ctx) -> tuple[Image.Image, int]:
    sky_top = c.pick([(120, 170, 230), (170, 200, 230), (200, 200, 205), (235, 190, 150), (140, 150, 170)])
    sky_bot = shade(sky_top, 1.15)
    ground = c.pick([(194, 170, 120), (110, 130, 70), (230, 232, 238), (120, 100, 80), (150, 140, 110)])
    horizon = c.rng.randint(int(_C * 0.45), int(_C * 0.65))
    arr = np.zeros((_C, _C, 3), np.float32)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None]
    arr[:horizon] = (np.array(sky_top) * (1 - t) + np.array(sky_bot) * t)[:, None, :]
    g = np.array(ground, np.float32)
    tg = np.linspace(0, 1, _C - horizon, dtype=np.float32)[:, None]
    arr[horizon:] = (g * (0.9 + 0.2 * tg))[:, None, :]
    arr[horizon:] += c.np.normal(0, 6, size=(_C - horizon, _C, 1)).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    if c.chance(0.6):  # distant hills
        pts = [(0, horizon)]
        for x in range(0, _C + 40, 40):
            pts.append((x, horizon - c.rng.randint(5, 45)))
        pts.append((_C, horizon))
        d.polygon(pts, fill=shade(ground, 0.8))
    return img, horizon


def _camo(c: Ctx, size, base) -> Image.Image:
    layer = Image.new("RGB", size, base)
    if c.chance(0.6):
        d = ImageDraw.Draw(layer)
        for _ in range(c.rng.randint(10, 20)):
            x, y = c.rng.randint(0, size[0]), c.rng.randint(0, size[1])
            rx, ry = c.rng.randint(10, 35), c.rng.randint(6, 20)
            d.ellipse([x - rx, y - ry, x + rx, y + ry], fill=shade(base, c.pick([0.7, 0.8, 1.2])))
    return layer


def _wheels(d, xs, y, r, col, hub):
    for x in xs:
        d.ellipse([x - r, y - r, x + r, y + r], fill=col)
        d.ellipse([x - r * 0.45, y - r * 0.45, x + r * 0.45, y + r * 0.45], fill=hub)


def _vehicle_shape(c: Ctx, kind: str) -> tuple[Image.Image, Image.Image]:
    """Returns (mask of the painted body, overlay with wheels/tracks/details) on a 400x220 layer."""
    W, H = 400, 220
    body = Image.new("L", (W, H), 0)
    det = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    bd = ImageDraw.Draw(body)
    dd = ImageDraw.Draw(det)
    dark = (35, 35, 30, 255)
    mid = (70, 70, 62, 255)
    if kind == "tank":
        # tracks: a long rounded belt with road wheels
        dd.rounded_rectangle([20, 140, 380, 205], radius=32, fill=dark)
        _wheels(dd, [60 + i * 47 for i in range(7)], 172, 20, mid, dark)
        bd.polygon([(10, 145), (30, 112), (370, 112), (392, 145), (380, 150), (20, 150)], fill=255)  # hull
        tx = c.rng.randint(130, 170)
        bd.polygon([(tx, 112), (tx + 15, 75), (tx + 120, 70), (tx + 150, 88), (tx + 155, 112)], fill=255)  # turret
        gl = c.rng.randint(120, 170)
        bd.rectangle([tx + 150, 82, min(W - 1, tx + 150 + gl), 92], fill=255)  # gun
        bd.rectangle([tx + 40, 60, tx + 70, 72], fill=255)  # hatch
    elif kind == "truck":
        r = 24
        _wheels(dd, [70, 250, 310], 185, r, dark, mid)
        bd.rectangle([30, 140, 380, 165], fill=255)  # chassis
        bd.polygon([(30, 140), (30, 80), (60, 60), (120, 60), (120, 140)], fill=255)  # cab
        bd.rounded_rectangle([130, 55, 385, 145], radius=12, fill=255)  # canvas cover
        dd.polygon([(40, 85), (62, 68), (110, 68), (110, 100), (40, 100)], fill=(150, 180, 200, 255))  # window
        for x in range(170, 380, 45):
            dd.line([x, 60, x, 140], fill=(0, 0, 0, 60), width=3)
    else:  # wheeled armoured personnel carrier
        r = 24
        _wheels(dd, [70, 140, 260, 330], 180, r, dark, mid)
        bd.polygon([(15, 150), (15, 120), (60, 85), (360, 85), (385, 115), (385, 160), (15, 160)], fill=255)
        bd.rectangle([200, 62, 270, 85], fill=255)  # small turret
        bd.rectangle([265, 68, 360, 76], fill=255)  # cannon
        for x in (100, 160, 220):
            dd.rectangle([x, 100, x + 18, 110], fill=(20, 20, 20, 200))  # vision blocks
    return body, det


def _military_vehicle(c: Ctx) -> Image.Image:
    img, horizon = _terrain(c)
    kind = c.pick(["tank", "tank", "truck", "apc"])
    body, det = _vehicle_shape(c, kind)
    base = c.pick([(85, 95, 55), (110, 105, 70), (150, 130, 90), (95, 100, 90), (70, 80, 60), (180, 160, 120)])
    paint = _camo(c, body.size, base)
    veh = Image.new("RGBA", body.size, (0, 0, 0, 0))
    veh.alpha_composite(det)
    veh.paste(paint, (0, 0), body)
    mirrored = c.chance(0.5)
    if mirrored:
        veh = ImageOps.mirror(veh)
    W = veh.width
    d = ImageDraw.Draw(veh)
    # markings (serial number, star), drawn after mirroring so that the text reads normally
    serial = _fake_number(c, c.pick(["##-???-##", "?#-####", "###?##"]))
    tx, ty = {"truck": (40, 110), "tank": (60, 122), "apc": (40, 128)}[kind]
    tw = text_mask(serial, 14, "bold").width
    put_text(veh, (W - tx - tw if mirrored else tx, ty), serial, 14, (235, 235, 225, 255), "bold")
    if c.chance(0.6):
        sx, sy = (300, 120) if kind != "truck" else (250, 90)
        if mirrored:
            sx = W - sx
        pts = []
        for i in range(10):
            rr = 12 if i % 2 == 0 else 5
            a = math.pi * i / 5 - math.pi / 2
            pts.append((sx + rr * math.cos(a), sy + rr * math.sin(a)))
        d.polygon(pts, fill=(235, 235, 225, 255))
    k = c.rng.uniform(0.75, 1.05)
    veh = veh.resize((int(veh.width * k), int(veh.height * k)), Image.LANCZOS)
    x = c.rng.randint(max(-30, -veh.width // 8), _C - veh.width + min(30, veh.width // 8))
    y = horizon - int(veh.height * c.rng.uniform(0.35, 0.6))
    y = max(10, min(_C - veh.height, y))
    # shadow on the ground
    sh = Image.new("L", (_C, _C), 0)
    ImageDraw.Draw(sh).ellipse([x + 10, y + veh.height - 22, x + veh.width - 10, y + veh.height + 8], fill=110)
    img.paste((20, 20, 15), (0, 0), sh.filter(ImageFilter.GaussianBlur(6)))
    img.paste(veh, (x, y), veh)
    if c.chance(0.3):  # dust/haze
        haze = Image.new("RGB", img.size, (200, 190, 170))
        img = Image.blend(img, haze, c.rng.uniform(0.1, 0.25))
    return img


# --------------------------------------------------------------------------- unseen categories

def _credit_card(c: Ctx) -> Image.Image:
    f = c.fake
    w, h = 420, 265
    col1, col2 = deep(c), vivid(c) if c.chance(0.5) else deep(c)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    arr = np.array(col1, np.float32) * (1 - t) + np.array(col2, np.float32) * t
    grad = Image.fromarray(np.broadcast_to(arr, (h, w, 3)).astype(np.uint8), "RGB")
    card = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, w - 1, h - 1], radius=20, fill=255)
    card.paste(grad, (0, 0), mask)
    d = ImageDraw.Draw(card)
    fg = (245, 245, 245) if sum(col1) + sum(col2) < 700 else (20, 20, 20)
    bank = c.pick([f"{f.last_name()} Bank", f"{f.city()} Credit", f"{f.last_name()} Financial"])
    put_text(card, (26, 20), bank, 20, fg, "bold", max_width=w - 140)
    d.rounded_rectangle([34, 82, 96, 128], radius=7, fill=(212, 180, 90))  # chip
    for yy in (97, 112):
        d.line([34, yy, 96, yy], fill=(150, 120, 50), width=2)
    d.line([65, 82, 65, 128], fill=(150, 120, 50), width=2)
    num = " ".join(_fake_number(c, "####") for _ in range(4))
    put_text(card, (34, 146), num, 30, fg, c.pick(["sans", "bold", "condensed"]), max_width=w - 60)
    put_text(card, (34, 194), "VALID THRU", 9, fg, "sans")
    put_text(card, (110, 190), f"{c.rng.randint(1, 12):02d}/{c.rng.randint(26, 33)}", 16, fg, "sans")
    put_text(card, (34, 222), f.name().upper(), 17, fg, c.style, max_width=w - 150)
    brand = c.pick(["NOVA", "ORBIT", "ZENO", "PAYLINK", "AURA"])
    put_text(card, (w - 24, h - 44), brand, 22, fg, "bold", "r")
    specimen(card, c)
    return card


def _drivers_license(c: Ctx) -> Image.Image:
    f = c.fake
    w, h = 420, 265
    bgc = pastel(c)
    card = rounded_card((w, h), 14, bgc + (255,))
    guilloche(card, c, shade(bgc, 0.9) + (255,), n=c.rng.randint(4, 8))
    d = ImageDraw.Draw(card)
    hc = deep(c)
    d.rounded_rectangle([0, 0, w - 1, 50], radius=14, fill=hc)
    d.rectangle([0, 36, w - 1, 50], fill=hc)
    put_text(card, (16, 8), f.state().upper(), 18, (255, 255, 255), "bold", max_width=w // 2)
    put_text(card, (w - 16, 12), "DRIVER LICENSE", 18, (255, 255, 255), "bold", "r")
    photo_left = c.chance(0.8)
    px = 16 if photo_left else w - 126
    face(card, (px, 62, px + 110, 202), c)
    fx = 140 if photo_left else 16
    tx = ink(c)
    rows = [("DL", _fake_number(c, c.pick(["?#######", "########", "?###-####-####"]))), ("DOB", _date(c, 1950, 2006)),
            ("EXP", _date(c, 2026, 2033)), ("", f.name().upper()), ("", f.street_address().upper()),
            ("CLASS", c.pick(["C", "D", "B", "A"]) + "   SEX " + c.pick(["F", "M"]))]
    y = 60
    for label, value in rows:
        if label:
            put_text(card, (fx, y), label, 11, (170, 30, 30), "bold")
            put_text(card, (fx + 48, y - 2), value, 15, tx, c.style, max_width=w - fx - 60)
        else:
            put_text(card, (fx, y - 2), value, 14, tx, c.style, max_width=w - fx - 16)
        y += 25
    signature(card, (px + 4, 210, px + 120, 245), c)
    specimen(card, c)
    return card


# --------------------------------------------------------------------------- benign controls

def _chart(c: Ctx) -> Image.Image:
    bg = c.pick([(255, 255, 255), (248, 248, 245), (240, 244, 250), (30, 32, 40)])
    fg = (30, 30, 30) if bg[0] > 128 else (230, 230, 230)
    img = Image.new("RGB", (_C, _C), bg)
    d = ImageDraw.Draw(img)
    kind = c.pick(["bar", "line", "pie", "hbar"])
    topic = c.pick(["Rainfall", "Sales", "Visitors", "Temperature", "Downloads", "Harvest", "Energy use",
                    "Traffic", "Scores", "Orders"])
    period = c.pick(["by month", "per year", "by region", "per week", "by quarter"])
    put_text(img, (_C // 2, 16), f"{topic} {period}", 26, fg, "bold", "m", max_width=_C - 30)
    n = c.rng.randint(4, 8)
    vals = [c.rng.uniform(0.15, 1.0) for _ in range(n)]
    palette = [vivid(c) for _ in range(n)] if c.chance(0.5) else [vivid(c)] * n
    labels = [c.pick(["A", "B", "C", "D", "E", "F", "G", "H"]) + str(i + 1) for i in range(n)]
    x0, y0, x1, y1 = 60, 70, _C - 24, _C - 50
    if kind == "pie":
        cx, cy, r = _C // 2, (y0 + y1) // 2 + 10, 140
        tot = sum(vals)
        a = -90.0
        for v, col in zip(vals, [vivid(c) for _ in range(n)]):
            da = 360 * v / tot
            d.pieslice([cx - r, cy - r, cx + r, cy + r], a, a + da, fill=col, outline=bg, width=2)
            a += da
        return img
    d.line([x0, y0, x0, y1], fill=fg, width=2)
    d.line([x0, y1, x1, y1], fill=fg, width=2)
    for k in range(1, 5):
        yy = y1 - (y1 - y0) * k / 5
        d.line([x0 + 2, yy, x1, yy], fill=shade(bg, 0.9) if bg[0] > 128 else (70, 70, 80), width=1)
        put_text(img, (x0 - 8, yy - 8), str(k * 20), 14, fg, "sans", "r")
    step = (x1 - x0) / n
    if kind == "bar":
        for i, (v, col) in enumerate(zip(vals, palette)):
            bx = x0 + step * i + step * 0.15
            d.rectangle([bx, y1 - (y1 - y0 - 10) * v, bx + step * 0.7, y1 - 1], fill=col)
            put_text(img, (bx + step * 0.35, y1 + 6), labels[i], 14, fg, "sans", "m")
    elif kind == "hbar":
        stepy = (y1 - y0) / n
        for i, (v, col) in enumerate(zip(vals, palette)):
            by = y0 + stepy * i + stepy * 0.15
            d.rectangle([x0 + 1, by, x0 + (x1 - x0 - 10) * v, by + stepy * 0.7], fill=col)
    else:
        pts = [(x0 + step * (i + 0.5), y1 - (y1 - y0 - 10) * v) for i, v in enumerate(vals)]
        col = palette[0]
        d.line(pts, fill=col, width=4)
        for p in pts:
            d.ellipse([p[0] - 6, p[1] - 6, p[0] + 6, p[1] + 6], fill=col)
    return img


def _scene(c: Ctx) -> Image.Image:
    tod = c.pick(["day", "day", "dusk", "night", "overcast"])
    skies = {"day": ((90, 150, 230), (180, 215, 245)), "dusk": ((60, 60, 120), (250, 160, 90)),
             "night": ((10, 15, 40), (40, 50, 90)), "overcast": ((150, 155, 165), (200, 200, 205))}
    top, bot = skies[tod]
    horizon = c.rng.randint(int(_C * 0.5), int(_C * 0.7))
    arr = np.zeros((_C, _C, 3), np.float32)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None]
    arr[:horizon] = (np.array(top) * (1 - t) + np.array(bot) * t)[:, None, :]
    ground = c.pick([(90, 150, 70), (120, 160, 80), (200, 190, 140), (235, 238, 245), (70, 120, 60)])
    if tod == "night":
        ground = shade(ground, 0.4)
    arr[horizon:] = np.array(ground, np.float32)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    if tod == "night":
        for _ in range(40):
            x, y = c.rng.randint(0, _C), c.rng.randint(0, horizon - 20)
            d.point((x, y), fill=(255, 255, 230))
        d.ellipse([340, 40, 390, 90], fill=(240, 240, 210))
    elif tod != "overcast":
        sx, sy = c.rng.randint(40, _C - 40), c.rng.randint(30, max(40, horizon - 120))
        d.ellipse([sx - 28, sy - 28, sx + 28, sy + 28], fill=(255, 230, 120) if tod == "day" else (255, 150, 80))
    for _ in range(c.rng.randint(0, 4)):
        cx, cy = c.rng.randint(0, _C), c.rng.randint(20, max(30, horizon // 2))
        for k in range(3):
            d.ellipse([cx + k * 25 - 35, cy - 15 - (k % 2) * 10, cx + k * 25 + 25, cy + 18], fill=(245, 245, 250)
                      if tod != "night" else (70, 75, 100))
    if c.chance(0.7):  # mountains
        mc = c.pick([(110, 120, 140), (90, 100, 90), (130, 110, 100)])
        if tod == "night":
            mc = shade(mc, 0.4)
        x = -40
        while x < _C:
            wdt = c.rng.randint(120, 220)
            ht = c.rng.randint(60, 160)
            d.polygon([(x, horizon), (x + wdt // 2, horizon - ht), (x + wdt, horizon)], fill=mc)
            if tod in ("day", "overcast") and c.chance(0.5):
                d.polygon([(x + wdt // 2 - 18, horizon - ht + 25), (x + wdt // 2, horizon - ht),
                           (x + wdt // 2 + 18, horizon - ht + 25)], fill=(245, 245, 250))
            x += wdt - c.rng.randint(20, 60)
    if c.chance(0.4):  # a lake or a road
        if c.chance(0.5):
            d.ellipse([c.rng.randint(-60, 150), horizon + 20, c.rng.randint(280, 520), _C + 40], fill=(70, 120, 180))
        else:
            d.polygon([(_C // 2 - 10, horizon), (_C // 2 + 10, horizon), (_C // 2 + 120, _C), (_C // 2 - 120, _C)],
                      fill=(90, 90, 95))
    if c.chance(0.5):  # a house
        hx, hy = c.rng.randint(40, _C - 140), horizon + c.rng.randint(-10, 40)
        wall = c.pick([(230, 210, 170), (200, 80, 60), (240, 240, 235), (160, 190, 210)])
        d.rectangle([hx, hy - 70, hx + 100, hy], fill=wall)
        d.polygon([(hx - 12, hy - 70), (hx + 50, hy - 115), (hx + 112, hy - 70)], fill=(120, 50, 40))
        d.rectangle([hx + 40, hy - 40, hx + 60, hy], fill=(90, 60, 40))
        d.rectangle([hx + 12, hy - 55, hx + 30, hy - 38], fill=(180, 210, 240))
        d.rectangle([hx + 70, hy - 55, hx + 88, hy - 38], fill=(180, 210, 240))
    for _ in range(c.rng.randint(1, 7)):  # trees
        tx = c.rng.randint(0, _C)
        ty = c.rng.randint(horizon + 5, _C - 10)
        s = 0.5 + (ty - horizon) / (_C - horizon + 1)
        green = shade(c.pick([(40, 110, 50), (30, 90, 40), (60, 130, 60)]), 0.5 if tod == "night" else 1.0)
        d.rectangle([tx - 4 * s, ty - 20 * s, tx + 4 * s, ty], fill=(90, 60, 30))
        if c.chance(0.5):
            d.polygon([(tx - 28 * s, ty - 18 * s), (tx, ty - 95 * s), (tx + 28 * s, ty - 18 * s)], fill=green)
        else:
            d.ellipse([tx - 30 * s, ty - 80 * s, tx + 30 * s, ty - 15 * s], fill=green)
    return img


# --------------------------------------------------------------------------- public entry points

_RENDERERS: dict[str, tuple[Callable[[Ctx], Image.Image], bool]] = {
    # category: (drawing function, whether it draws an object to place on a background)
    "passport": (_passport, True),
    "phone_number": (_phone_number, True),
    "receipt": (_receipt, True),
    "student_id": (_student_id, True),
    "document": (_document, True),
    "military_vehicle": (_military_vehicle, False),
    "credit_card": (_credit_card, True),
    "drivers_license": (_drivers_license, True),
    "chart": (_chart, False),
    "scene": (_scene, False),
}
assert set(_RENDERERS) == set(ALL_CATEGORIES)


def render_image(category: str, seed: int) -> Image.Image:
    """Draw one RGB image of ``category`` (IMAGE_SIZE square) from ``seed``."""
    if category not in _RENDERERS:
        raise ValueError(f"unknown category {category!r}; known: {', '.join(ALL_CATEGORIES)}")
    c = _ctx(int(seed))
    fn, is_object = _RENDERERS[category]
    img = fn(c)
    if is_object:
        img = place(c, img)
    elif category == "chart" and c.chance(0.5):  # a chart on a page or a screen, slightly tilted
        obj = img.convert("RGBA")
        img = place(c, obj, max_angle=6, fill_range=(0.85, 1.0))
    return finish(c, img)


def png_bytes(img: Image.Image) -> bytes:
    """PNG bytes with fixed settings and no metadata (the same pixels give the same bytes)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def save_png(img: Image.Image, path: Path) -> None:
    Path(path).write_bytes(png_bytes(img))
