"""Scenes of the main family: military vehicles (with painted serial numbers) and the benign controls.

Drawn on a 448 px square canvas, the output size; a vehicle's serial number and unit marking are its
secrets. Charts record their title and axis labels as text lines; landscapes have no text.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from ng_core.data.draw import Ctx, Sheet, fake_number, shade, vivid

#: Canvas and output size of scenes.
SCENE_SIZE = 448
_C = SCENE_SIZE


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


def _vehicle_shape(c: Ctx, kind: str) -> tuple[Image.Image, Image.Image, int]:
    """Returns (mask of the painted body, overlay with wheels/tracks/details) on a 400x220 layer."""
    W, H = 400, 220
    tx = 0
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
    return body, det, (tx if kind == "tank" else 0)


def military_vehicle(c: Ctx) -> Sheet:
    img, horizon = _terrain(c)
    kind = c.pick(["tank", "tank", "truck", "apc"])
    body, det, tx_turret = _vehicle_shape(c, kind)
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
    # markings, drawn after mirroring so that the text reads normally: a large serial number on the hull
    # (or the truck's cover) and a unit marking on the turret or cab; both are the vehicle's secrets
    sheet = Sheet(veh, font=c.pick(["dejavu-sans-bold", "dejavu-mono-bold", "dejavu-sans-bold"]))
    paint = c.pick([(240, 240, 230, 255), (250, 235, 170, 255), (235, 235, 235, 255), (20, 20, 20, 255)])
    if paint[0] < 100 and base[0] < 120:
        paint = (240, 240, 230, 255)
    serial = fake_number(c, c.pick(["##-???-##", "?#-####", "###?##", "## ?? ###", "?-#####"]))
    unit = c.pick([fake_number(c, "#-??"), fake_number(c, "?-##"), fake_number(c, "HQ #/##"),
                   fake_number(c, "##?"), fake_number(c, "?## ?")])
    sx, sy, ssize = {"truck": (145, 82, 34), "tank": (40, 113, 32), "apc": (40, 112, 36)}[kind]
    ux, uy, usize = {"truck": (40, 104, 24), "tank": (tx_turret + 30, 80, 26), "apc": (205, 63, 20)}[kind]
    sw = sheet.text((-1000, -1000), serial, ssize, paint, record=False)[0]
    uw = sheet.text((-1000, -1000), unit, usize, paint, record=False)[0]
    sheet.text((W - sx - sw if mirrored else sx, sy), serial, ssize, paint)
    sheet.text((W - ux - uw if mirrored else ux, uy), unit, usize, paint)
    sheet.field("Serial number", serial)
    sheet.field("Unit", unit)
    if c.chance(0.5):
        stx, sty = (340, 128) if kind != "truck" else (330, 100)
        if mirrored:
            stx = W - stx
        pts = []
        for i in range(10):
            rr = 12 if i % 2 == 0 else 5
            a = math.pi * i / 5 - math.pi / 2
            pts.append((stx + rr * math.cos(a), sty + rr * math.sin(a)))
        d.polygon(pts, fill=paint)
    k = c.rng.uniform(0.95, 1.1)
    close = c.vchance(0.4)  # a variant: the camera nearer, the vehicle larger than the frame (the markings in it)
    if close:  # at most as large as keeps both markings inside the frame
        span = max(it.x + it.w for it in sheet.items) - min(it.x for it in sheet.items)
        k = min(c.var.uniform(1.3, 1.75), (_C - 20) / max(1.0, span))
    for it in sheet.items:
        it.x, it.y, it.w, it.h = it.x * k, it.y * k, it.w * k, it.h * k
    veh = veh.resize((int(veh.width * k), int(veh.height * k)), Image.LANCZOS)
    x = c.rng.randint(0, max(0, _C - veh.width))
    y = horizon - int(veh.height * c.rng.uniform(0.35, 0.6))
    y = max(10, min(_C - veh.height, y))
    if close:  # shift so that every marking stays inside the frame, the rest of the vehicle may leave it
        lo, hi = min(it.x for it in sheet.items), max(it.x + it.w for it in sheet.items)
        x = int(c.var.uniform(min(8 - lo, _C - 8 - hi), _C - 8 - hi))
    # shadow on the ground
    sh = Image.new("L", (_C, _C), 0)
    ImageDraw.Draw(sh).ellipse([x + 10, y + veh.height - 22, x + veh.width - 10, y + veh.height + 8], fill=110)
    img.paste((20, 20, 15), (0, 0), sh.filter(ImageFilter.GaussianBlur(6)))
    img.paste(veh, (x, y), veh)
    for it in sheet.items:
        it.x, it.y = it.x + x, it.y + y
    if c.chance(0.3):  # dust/haze
        haze = Image.new("RGB", img.size, (200, 190, 170))
        img = Image.blend(img, haze, c.rng.uniform(0.1, 0.2))
    sheet.img = img
    return sheet


# --------------------------------------------------------------------------- benign controls

def chart(c: Ctx) -> Sheet:
    bg = c.pick([(255, 255, 255), (248, 248, 245), (240, 244, 250), (30, 32, 40)])
    fg = (30, 30, 30) if bg[0] > 128 else (230, 230, 230)
    img = Image.new("RGB", (_C, _C), bg)
    sh = Sheet(img, font=c.pick(["dejavu-sans", "dejavu-serif", "pil"]))
    d = ImageDraw.Draw(img)
    kind = c.pick(["bar", "line", "pie", "hbar"])
    topic = c.pick(["Rainfall", "Sales", "Visitors", "Temperature", "Downloads", "Harvest", "Energy use",
                    "Traffic", "Scores", "Orders"])
    period = c.pick(["by month", "per year", "by region", "per week", "by quarter"])
    sh.text((_C // 2, 16), f"{topic} {period}", 26, fg, "dejavu-sans-bold", "m", max_width=_C - 30)
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
        return sh
    d.line([x0, y0, x0, y1], fill=fg, width=2)
    d.line([x0, y1, x1, y1], fill=fg, width=2)
    for k in range(1, 5):
        yy = y1 - (y1 - y0) * k / 5
        d.line([x0 + 2, yy, x1, yy], fill=shade(bg, 0.9) if bg[0] > 128 else (70, 70, 80), width=1)
        sh.text((x0 - 8, yy - 8), str(k * 20), 15, fg, anchor="r")
    step = (x1 - x0) / n
    if kind == "bar":
        for i, (v, col) in enumerate(zip(vals, palette)):
            bx = x0 + step * i + step * 0.15
            d.rectangle([bx, y1 - (y1 - y0 - 10) * v, bx + step * 0.7, y1 - 1], fill=col)
            sh.text((bx + step * 0.35, y1 + 6), labels[i], 15, fg, anchor="m")
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
    return sh


def scene(c: Ctx) -> Sheet:
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
    return Sheet(img)
