"""How a drawn card becomes an image (main family): a flat scan or a photo of the card on a table.

``flat``: the card fills the frame (a thin margin of scanner bed around it), no rotation, light noise.
``photo``: the card on a textured table, rotated up to about 10 degrees, mild perspective, a soft drop
shadow, a lighting gradient (sometimes a shadow band), blur, noise and JPEG artefacts.
Both return the image and the masks of the card and background pixels (for the measured colours).
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFilter

from ng_core.data.draw import Ctx, deep, pastel

MAX_SIDE = 640
MIN_SIDE = 448


def perspective_coeffs(dst, src) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points ``dst`` to input points ``src`` (4 pairs)."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return np.linalg.solve(np.asarray(a, np.float64), np.asarray(b, np.float64)).tolist()


def warp_onto(card: Image.Image, frame_size, corners) -> Image.Image:
    """``card`` (RGBA) warped so its corners (TL, TR, BR, BL) land on ``corners`` in a frame of ``frame_size``."""
    w, h = card.size
    coeffs = perspective_coeffs(corners, [(0, 0), (w, 0), (w, h), (0, h)])
    return card.transform(frame_size, Image.PERSPECTIVE, coeffs, Image.BICUBIC)


def table(c: Ctx, size) -> Image.Image:
    """A table or floor texture for photos."""
    w, h = size
    kind = c.pick(["wood", "wood", "cloth", "speckle", "gradient", "solid"])
    base = np.array(c.pick([pastel(c), deep(c), (c.rng.randint(70, 200),) * 3]), dtype=np.float32)
    if kind == "wood":
        wood = np.array(c.pick([(150, 100, 60), (120, 80, 45), (181, 137, 90), (95, 65, 40), (200, 170, 130)]),
                        dtype=np.float32)
        y = np.arange(h, dtype=np.float32)[:, None]
        x = np.arange(w, dtype=np.float32)[None, :]
        f1, f2 = c.rng.uniform(0.04, 0.1), c.rng.uniform(0.004, 0.015)
        grain = 0.86 + 0.1 * np.sin(y * f1 + 3 * np.sin(x * f2 + c.rng.uniform(0, 6)))
        if c.chance(0.5):
            grain = grain[::-1].copy()
        arr = wood[None, None, :] * grain[:, :, None]
    elif kind == "cloth":
        y = np.arange(h)[:, None]
        x = np.arange(w)[None, :]
        pat = ((x // 3 + y // 3) % 2).astype(np.float32) * 12 - 6
        arr = base[None, None, :] + pat[:, :, None]
    elif kind == "speckle":
        small = c.np.normal(0, 16, size=(h // 2 + 1, w // 2 + 1, 1)).astype(np.float32)
        arr = base[None, None, :] + np.repeat(np.repeat(small, 2, 0), 2, 1)[:h, :w]
    elif kind == "gradient":
        other = np.array(pastel(c) if c.chance(0.5) else deep(c), dtype=np.float32)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        arr = np.broadcast_to(base * (1 - t) + other * t, (h, w, 3))
    else:
        arr = np.broadcast_to(base, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def _noise(c: Ctx, img: Image.Image, sigma: float, gain: float = 1.0, bias: float = 0.0,
           light: np.ndarray | None = None) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32) * gain + bias
    if light is not None:
        arr *= light[:, :, None]
    if sigma > 0.3:
        arr += c.np.standard_normal(arr.shape, dtype=np.float32) * sigma
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def flat(c: Ctx, card: Image.Image):
    """A scan: the card fills the frame. Returns (image, card mask, background mask)."""
    cw, ch = card.size
    longest = max(cw, ch)
    k = min(1.0, (MAX_SIDE - 24) / longest)
    if k < 1.0:
        card = card.resize((max(1, round(cw * k)), max(1, round(ch * k))), Image.LANCZOS)
        cw, ch = card.size
    m = c.rng.randint(6, 12)
    size = (cw + 2 * m, ch + 2 * m)
    bed = c.pick([(250, 250, 250), (240, 240, 238), (228, 230, 232), (30, 30, 32), (255, 255, 255)])
    img = Image.new("RGB", size, bed)
    alpha = card.getchannel("A")
    img.paste(card.convert("RGB"), (m, m), alpha)
    full = Image.new("L", size, 0)
    full.paste(alpha, (m, m))
    a = np.asarray(full)
    img = _noise(c, img, c.rng.uniform(0.0, 2.5), c.rng.uniform(0.96, 1.03), c.rng.uniform(-4, 4))
    return img, a > 200, a == 0


def photo(c: Ctx, card: Image.Image):
    """A photo of the card on a table. Returns (image, card mask, background mask)."""
    cw, ch = card.size
    if ch > cw * 1.15:
        frame = c.pick([(640, 640), (480, 640)])
    else:
        frame = c.pick([(640, 640), (640, 480)])
    fw, fh = frame
    angle = math.radians(c.rng.uniform(-10, 10))
    ca, sa = abs(math.cos(angle)), abs(math.sin(angle))
    bw, bh = cw * ca + ch * sa, cw * sa + ch * ca
    k = c.rng.uniform(0.8, 0.93) * min(fw / bw, fh / bh)
    cx = fw / 2 + c.rng.uniform(-1, 1) * max(0.0, (fw - bw * k) / 2 - 4)
    cy = fh / 2 + c.rng.uniform(-1, 1) * max(0.0, (fh - bh * k) / 2 - 4)
    cos, sin = math.cos(angle), math.sin(angle)
    corners = []
    jit = 0.025 * max(cw, ch) * k
    for (px, py) in ((-cw / 2, -ch / 2), (cw / 2, -ch / 2), (cw / 2, ch / 2), (-cw / 2, ch / 2)):
        x = cx + k * (px * cos - py * sin) + c.rng.uniform(-jit, jit)
        y = cy + k * (px * sin + py * cos) + c.rng.uniform(-jit, jit)
        corners.append((x, y))
    warped = warp_onto(card, frame, corners)
    alpha = warped.getchannel("A")
    img = table(c, frame)
    # soft drop shadow
    off = (c.rng.randint(-10, 10), c.rng.randint(4, 14))
    sh = Image.new("L", frame, 0)
    sh.paste(alpha.point(lambda v: v * 110 // 255), off)
    sh = sh.filter(ImageFilter.BoxBlur(c.rng.randint(4, 9)))
    img.paste((10, 10, 10), (0, 0), sh)
    img.paste(warped.convert("RGB"), (0, 0), alpha)
    # lighting: a gradient, sometimes a soft shadow band across the frame
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    gx, gy = c.rng.uniform(-0.18, 0.18), c.rng.uniform(-0.18, 0.18)
    light = 1.0 + gx * (xx / fw - 0.5) + gy * (yy / fh - 0.5)
    if c.chance(0.35):
        th = c.rng.uniform(0, math.pi)
        d0 = c.rng.uniform(-0.3, 0.3) * fw
        dist = (xx - fw / 2) * math.cos(th) + (yy - fh / 2) * math.sin(th) - d0
        light *= 1.0 - c.rng.uniform(0.12, 0.25) / (1.0 + np.exp(-dist / c.rng.uniform(15, 40)))
    if c.chance(0.6):
        img = img.filter(ImageFilter.GaussianBlur(c.rng.uniform(0.3, 0.9)))
    img = _noise(c, img, c.rng.uniform(1.0, 4.0), c.rng.uniform(0.93, 1.06), c.rng.uniform(-8, 8), light)
    if c.chance(0.8):
        img = jpeg(img, c.rng.randint(55, 88))
    a = np.asarray(alpha)
    return img, a > 200, a == 0


def finish_scene(c: Ctx, img: Image.Image, jpeg_chance: float = 0.5) -> Image.Image:
    """Light finishing of a scene-like image (vehicle, chart, landscape): gain, gradient, blur, noise."""
    img = img.convert("RGB")
    if c.chance(0.3):
        img = img.filter(ImageFilter.GaussianBlur(c.rng.uniform(0.3, 0.8)))
    w, h = img.size
    light = None
    if c.chance(0.4):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        light = 1.0 + c.rng.uniform(-0.1, 0.1) * (xx / w - 0.5) + c.rng.uniform(-0.1, 0.1) * (yy / h - 0.5)
    img = _noise(c, img, c.rng.uniform(0.0, 5.0), c.rng.uniform(0.88, 1.1), c.rng.uniform(-10, 10), light)
    if c.chance(jpeg_chance):
        img = jpeg(img, c.rng.randint(60, 90))
    return img

