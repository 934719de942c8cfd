"""Drawing toolbox shared by the image families: seeds, fonts, recorded text, colours and small motifs.

Text drawn through :class:`Sheet` is recorded (position, size, string) so that the ground truth of an
image (its text lines, top to bottom) comes from what was actually drawn.
"""
from __future__ import annotations

import colorsys
import hashlib
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any parts (independent of Python's hash randomisation)."""
    h = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") >> 1


@lru_cache(maxsize=1)
def _faker():
    from faker import Faker  # deferred: faker is slow to import (its locale data)

    return Faker("en_US")


@dataclass
class Ctx:
    rng: random.Random
    np: np.random.Generator
    fake: object
    #: wording variants (titles left off, label synonyms, brand words) come from this second stream, so that they
    #: leave the image's names and numbers, drawn from the main stream first, unchanged. Variants that change the
    #: drawing itself (a pinned notice, a vehicle close up) may shift the main stream's later draws (the photo
    #: effects). None: no variants (the default family)
    var: random.Random | None = None

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def vchance(self, p: float) -> bool:
        """True with probability ``p`` when wording variants are on; always False (and no draw) when off."""
        return self.var is not None and self.var.random() < p

    def vpick(self, seq):
        return seq[self.var.randrange(len(seq))] if self.var is not None else seq[0]

    def vary(self, value, p: float, options):
        """``value``, or with probability ``p`` one of ``options`` (drawn from the variant stream)."""
        return self.vpick(options) if self.vchance(p) else value


def make_ctx(seed: int, variants: bool = False) -> Ctx:
    fake = _faker()
    fake.seed_instance(seed)
    return Ctx(random.Random(seed), np.random.default_rng(seed), fake,
               random.Random(f"variant:{seed}") if variants else None)


# --------------------------------------------------------------------------- fonts

#: TrueType fonts bundled with matplotlib (DejaVu, STIX); "pil" is Pillow's built-in scalable font.
FONT_FILES = {
    "dejavu-sans": "DejaVuSans.ttf",
    "dejavu-sans-bold": "DejaVuSans-Bold.ttf",
    "dejavu-mono": "DejaVuSansMono.ttf",
    "dejavu-mono-bold": "DejaVuSansMono-Bold.ttf",
    "dejavu-serif": "DejaVuSerif.ttf",
    "dejavu-serif-bold": "DejaVuSerif-Bold.ttf",
    "stix": "STIXGeneral.ttf",
    "stix-bold": "STIXGeneralBol.ttf",
    "pil": None,
}


@lru_cache(maxsize=1)
def _font_dir() -> Path | None:
    try:
        import matplotlib  # deferred: matplotlib is slow to import and optional (only its fonts are used)

        d = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        return d if d.is_dir() else None
    except Exception:  # matplotlib missing: every font falls back to Pillow's
        return None


@lru_cache(maxsize=256)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    size = max(6, int(size))
    fname = FONT_FILES.get(name)
    d = _font_dir()
    if fname and d is not None and (d / fname).is_file():
        return ImageFont.truetype(str(d / fname), size)
    return ImageFont.load_default(size=size)


def text_width(text: str, size: int, name: str) -> int:
    return int(font(name, size).getlength(text)) + 2


@dataclass
class TextItem:
    text: str
    x: float
    y: float
    w: float
    h: float


@dataclass
class Sheet:
    """An RGBA image and the text drawn on it."""

    img: Image.Image
    items: list = field(default_factory=list)
    fields: list = field(default_factory=list)
    secrets: list = field(default_factory=list)
    font: str = "pil"

    @property
    def size(self):
        return self.img.size

    def text(self, xy, s: str, size: int, fill, name: str | None = None, anchor: str = "l",
             max_width: int | None = None, record: bool = True) -> tuple[int, int]:
        """Draw ``s`` with its top at ``xy`` (left, "m" centre or "r" right); returns (width, height).

        Too wide for ``max_width``: the font shrinks, down to 80 % of ``size``, then the text runs over.
        """
        name = name or self.font
        f = font(name, size)
        floor = max(8, int(size * 0.8))
        while max_width and size > floor and f.getlength(s) > max_width:  # shrink rather than squash
            size -= 1
            f = font(name, size)
        l, t, r, b = f.getbbox(s)
        x, y = float(xy[0]), float(xy[1])
        w = r - l
        if anchor == "m":
            x -= w / 2
        elif anchor == "r":
            x -= w
        ImageDraw.Draw(self.img).text((x - l, y - t), s, fill=fill, font=f)
        if record and s.strip():
            self.items.append(TextItem(s.strip(), x, y, w, b - t))
        return int(w), int(b - t)

    def field(self, label: str, value: str, secret: bool = True) -> str:
        self.fields.append([label, value])
        if secret:
            self.secrets.append(value)
        return value

    def secret(self, value: str) -> str:
        self.secrets.append(value)
        return value

    def lines(self) -> list[str]:
        """The recorded text as rows, top to bottom, each row's pieces left to right."""
        rows: list[list[TextItem]] = []
        for it in sorted(self.items, key=lambda i: (i.y + i.h / 2, i.x)):
            if rows:
                last = rows[-1]
                yc = sum(i.y + i.h / 2 for i in last) / len(last)
                hmin = min(min(i.h for i in last), it.h)
                if abs(it.y + it.h / 2 - yc) < 0.5 * max(hmin, 1):
                    last.append(it)
                    continue
            rows.append([it])
        return [" ".join(i.text for i in sorted(r, key=lambda i: i.x)) for r in rows]


def new_sheet(size, fill, radius: int = 0, font_name: str = "pil") -> Sheet:
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(img).rounded_rectangle([0, 0, size[0] - 1, size[1] - 1], radius=radius, fill=tuple(fill[:3]) + (255,))
    return Sheet(img, font=font_name)


# --------------------------------------------------------------------------- colours

def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0, min(1, s)), max(0, min(1, v)))
    return int(r * 255), int(g * 255), int(b * 255)


def pastel(c: Ctx) -> tuple[int, int, int]:
    return hsv(c.rng.random(), c.rng.uniform(0.08, 0.3), c.rng.uniform(0.88, 0.99))


def deep(c: Ctx) -> tuple[int, int, int]:
    return hsv(c.rng.random(), c.rng.uniform(0.5, 0.9), c.rng.uniform(0.25, 0.55))


def vivid(c: Ctx) -> tuple[int, int, int]:
    return hsv(c.rng.random(), c.rng.uniform(0.55, 0.95), c.rng.uniform(0.6, 0.95))


def shade(col, k: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(v * k))) for v in col[:3])


def ink(c: Ctx) -> tuple[int, int, int]:
    return c.pick([(20, 20, 25), (30, 30, 60), (45, 35, 30), (15, 40, 80), (40, 40, 40)])


def on(col) -> tuple[int, int, int]:
    """Black or white, whichever reads on ``col``."""
    return (250, 250, 250) if sum(col[:3]) < 400 else (20, 20, 20)


# --------------------------------------------------------------------------- motifs

def guilloche(img: Image.Image, c: Ctx, col, n: int = 6) -> None:
    """Wavy security lines across a document."""
    d = ImageDraw.Draw(img)
    w, h = img.size
    for k in range(n):
        amp, per, ph = c.rng.uniform(4, 14), c.rng.uniform(40, 120), c.rng.uniform(0, 6.3)
        y0 = h * (k + 0.5) / n
        d.line([(x, y0 + amp * math.sin(x / per * 6.283 + ph)) for x in range(0, w + 8, 8)], fill=col, width=1)


def face(img: Image.Image, box, c: Ctx) -> None:
    """A generic head-and-shoulders photo (no real person), clipped to ``box``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = x1 - x0, y1 - y0
    ph = Image.new("RGB", (w, h), c.pick([(205, 220, 235), (230, 230, 230), (245, 245, 240), (200, 210, 200)]))
    d = ImageDraw.Draw(ph)
    skin = c.pick([(241, 194, 160), (224, 172, 135), (198, 134, 94), (141, 85, 56), (255, 219, 180)])
    hair = c.pick([(30, 25, 20), (90, 60, 30), (160, 120, 60), (200, 180, 120), (70, 70, 70)])
    cx = w / 2
    d.ellipse([w * 0.1, h * 0.74, w * 0.9, h * 1.4], fill=deep(c))
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


def watermark(img: Image.Image, c: Ctx, word: str = "SPECIMEN", alpha: int = 28) -> None:
    """A faint word across an ID-like document (not recorded as a text line: an OCR rarely reads it)."""
    f = font("dejavu-sans-bold", max(14, img.height // 8))
    l, t, r, b = f.getbbox(word)
    m = Image.new("L", (r - l + 4, b - t + 4), 0)
    ImageDraw.Draw(m).text((2 - l, 2 - t), word, fill=alpha, font=f)
    m = m.rotate(c.rng.uniform(-25, 25), expand=True, resample=Image.BICUBIC)
    x = (img.width - m.width) // 2 + c.rng.randint(-20, 20)
    y = (img.height - m.height) // 2 + c.rng.randint(-15, 15)
    img.paste(Image.new(img.mode, m.size, (200, 30, 30, 255)), (x, y), m)


def fake_number(c: Ctx, pattern: str) -> str:
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


def phone(c: Ctx) -> str:
    return fake_number(c, c.pick(["(###) ###-####", "###-###-####", "+1 ### ### ####", "### ### ####",
                                  "+44 #### ######", "0### ### ###"]))


MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()


def date(c: Ctx, start: int = 1950, end: int = 2006) -> str:
    y, m, d = c.rng.randint(start, end), c.rng.randint(1, 12), c.rng.randint(1, 28)
    return c.pick([f"{d:02d} {MONTHS[m - 1]} {y}", f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}"])


def fit(make, width: int, size: int, name: str, tries: int = 6) -> str:
    """A value from ``make()`` that fits ``width`` at ``size`` (the shortest of a few tries otherwise)."""
    best = None
    for _ in range(tries):
        v = make()
        if text_width(v, size, name) <= width:
            return v
        if best is None or len(v) < len(best):
            best = v
    return best
