"""The held-out rendering family: documents drawn in a style no training image has.

Written apart from the main renderers (:mod:`.documents`, :mod:`.photo`): its own layouts (vertical cards,
header bands, numbered licence fields, boxed forms, two-column tables), its own label wordings ("Doc. no."
rather than "Passport No."), fonts (STIX, DejaVu Serif Bold, DejaVu Sans Mono Bold), palettes and photo
effects (a hand-held shadow, marble, checked cloth or dark desk, vignette, colour cast, motion blur).
Same truth format as the main family with ``family="heldout"``. Nothing trains on it.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ng_core.data.draw import (Ctx, Sheet, barcode, date, derive_seed, face, fake_number, fit, make_ctx, new_sheet, phone,
                           text_width)
from ng_core.data.photo import jpeg, warp_onto
from ng_core.data.sample import Sample
from ng_core.models.colour_names import colour_name

FONTS = ("stix", "stix-bold", "dejavu-serif-bold", "dejavu-mono-bold")
#: Institutional palettes: (band colour, card colour, ink).
PALETTES = (((0, 82, 110), (236, 244, 246), (10, 30, 40)), ((120, 40, 20), (250, 242, 228), (40, 20, 10)),
            ((40, 40, 40), (245, 245, 245), (0, 0, 0)), ((70, 30, 110), (242, 236, 250), (30, 10, 50)),
            ((0, 100, 60), (236, 248, 238), (0, 40, 20)), ((150, 110, 0), (255, 250, 232), (40, 30, 0)))
V, L = 26, 18


def _setup(c: Ctx, size, radius=12):
    band, bg, ink = c.pick(PALETTES)
    s = new_sheet(size, bg, radius, c.pick(FONTS))
    return s, band, bg, ink


def _band(s: Sheet, box, col):
    ImageDraw.Draw(s.img).rectangle(box, fill=col)


def _row(s: Sheet, x, y, label, value, ink, width, secret=True, lab_w=150):
    """Label and value side by side (a two-column table row)."""
    s.text((x, y + 4), label, L, (90, 90, 90), "dejavu-sans")
    s.text((x + lab_w, y), value, V, ink, max_width=width - lab_w)
    s.field(label, value, secret)


def passport(c: Ctx) -> Sheet:
    f = c.fake
    s, band, bg, ink = _setup(c, (610, 440), 4)
    _band(s, [0, 0, 60, 440], band)  # a vertical band on the left
    country = f.country().upper()
    s.text((80, 14), fit(lambda: country, 500, 24, "stix-bold"), 24, band, "stix-bold")
    s.text((80, 44), c.pick(["TRAVEL DOCUMENT", "PASSPORT BOOK", "REISEPASS / PASSPORT"]), 20, band, "dejavu-sans")
    face(s.img, (470, 90, 590, 250), c)
    last, first = f.last_name().upper(), f.first_name().upper()
    num = fake_number(c, c.pick(["#?#######", "??######", "?#######?"]))
    rows = [("Doc. no.", num, True), ("Name", fit(lambda: f"{last}, {first}", 230, V, s.font), True),
            ("Born", date(c), True), ("Birthplace", fit(lambda: f.city(), 230, V, s.font), True),
            ("Citizenship", fit(lambda: country.title(), 230, V, s.font), False), ("Expires", date(c, 2027, 2037), False)]
    y = 86
    for label, value, secret in rows:
        _row(s, 80, y, label, value, ink, 380, secret, 135)
        y += 42
    ImageDraw.Draw(s.img).line([80, y + 4, 590, y + 4], fill=band, width=2)
    code = (country[:3] + "XXX")[:3].replace(" ", "X")
    s.text((72, 380), f"P<{code}{last}<<{first}".replace(" ", "<").ljust(38, "<")[:38], 21, ink, "dejavu-mono-bold")
    s.text((72, 408), f"{num}<{code}{c.rng.randint(1000000, 9999999)}".ljust(38, "<")[:38], 21, ink,
           "dejavu-mono-bold")
    return s


def phone_number(c: Ctx) -> Sheet:
    f = c.fake
    num = phone(c)
    if c.chance(0.5):  # a vertical contact card
        s, band, bg, ink = _setup(c, (380, 600), 20)
        _band(s, [0, 0, 380, 110], band)
        s.text((190, 36), c.pick(["CONTACT", "EMERGENCY CONTACT", "CALL ME"]), 30, (255, 255, 255), "stix-bold", "m",
               max_width=350)
        name = fit(f.name, 340, 30, s.font)
        s.text((190, 150), name, 30, ink, anchor="m", max_width=350)
        s.field("Name", name)
        lab = c.pick(["Mob.", "Cell", "Ph."])
        s.text((30, 230), lab, L + 4, band, "dejavu-sans")
        s.text((30, 262), num, 34, ink, max_width=330)
        s.field(lab, num)
        mail = fit(f.company_email, 330, 22, s.font)
        s.text((30, 340), "E-mail", L, band, "dejavu-sans")
        s.text((30, 364), mail, 22, ink, max_width=330)
        s.field("E-mail", mail)
        return s
    s, band, bg, ink = _setup(c, (520, 620), 0)  # a paper poster with a header band
    _band(s, [0, 0, 520, 140], band)
    s.text((260, 40), c.pick(["LOST CAT", "ROOM FOR RENT", "BIKE FOR SALE", "DOG WALKER"]), 48, (255, 255, 255),
           "stix-bold", "m", max_width=490)
    for i, ln in enumerate(c.pick([["Reward offered", "if found please call"], ["Close to the station",
                                   "call or text"], ["Good condition", "ask for details at"]])):
        s.text((260, 190 + 46 * i), ln, 30, ink, anchor="m")
    s.text((260, 320), num, 50, ink, "dejavu-mono-bold", "m", max_width=490)
    s.field("Call", num)
    who = f.first_name()
    s.text((260, 400), f"ask for {who}", 32, ink, anchor="m")
    s.field("Name", who)
    return s


def receipt(c: Ctx) -> Sheet:
    f = c.fake
    s, band, bg, ink = _setup(c, (420, 620), 0)
    s.img.paste((252, 252, 250, 255), (0, 0, 420, 620))
    _band(s, [0, 0, 420, 80], band)
    s.text((210, 10), fit(lambda: f.company()[:24], 390, 28, "stix-bold"), 28, (255, 255, 255), "stix-bold", "m")
    store = fit(f.street_address, 390, 20, s.font)
    s.text((210, 46), store, 20, (255, 255, 255), anchor="m", max_width=400)
    s.field("Store", store)
    ref = fake_number(c, "R-######")
    s.text((16, 96), "Ref no.", L, (90, 90, 90), "dejavu-sans")
    s.text((150, 92), ref, V - 2, ink)
    s.field("Ref no.", ref)
    s.text((16, 132), "Qty  Item", L, (90, 90, 90), "dejavu-sans")
    s.text((404, 132), "Amount", L, (90, 90, 90), "dejavu-sans", "r")
    y, total = 162, 0.0
    for _ in range(c.rng.randint(3, 6)):
        q, p = c.rng.randint(1, 3), c.rng.randint(80, 1900) / 100
        total += q * p
        s.text((16, y), f"{q}  {c.pick(['Espresso', 'Bagel', 'Oranges', 'Yoghurt', 'Stamps', 'Tape', 'Cereal'])}", 22, ink)
        s.text((404, y), f"{q * p:.2f}", 22, ink, anchor="r")
        y += 30
    s.text((16, y + 8), "Amount due", 24, ink, "stix-bold")
    s.text((404, y + 8), f"{total:.2f}", 24, ink, "stix-bold", "r")
    last4 = fake_number(c, "####")
    s.text((16, y + 52), f"Paid with card ending {last4}", 21, ink, max_width=390)
    s.field("Card ending", last4)
    cust = fit(lambda: f.name(), 260, 22, s.font)
    s.text((16, y + 88), "Customer:", L, (90, 90, 90), "dejavu-sans")
    s.text((130, y + 84), cust, 22, ink, max_width=280)
    s.field("Customer", cust)
    barcode(s.img, (40, 560, 380, 600), c, ink)
    return s


def student_id(c: Ctx) -> Sheet:
    f = c.fake
    s, band, bg, ink = _setup(c, (390, 610), 18)
    _band(s, [0, 520, 390, 610], band)  # a footer band
    school = fit(lambda: c.pick([f"{f.last_name()} State College", f"{f.city()} Polytechnic"]), 360, 26, "stix-bold")
    s.text((195, 16), school, 26, band, "stix-bold", "m", max_width=370)
    face(s.img, (130, 56, 260, 216), c)
    sid = fake_number(c, c.pick(["ID-######", "##########", "U#######"]))
    rows = [("ID #", sid, True), ("Name", fit(f.name, 250, V, s.font), True), ("Born", date(c, 1996, 2008), True),
            ("Faculty", c.pick(["Arts", "Medicine", "Chemistry", "Nursing", "Geology"]), False)]
    y = 236
    for label, value, secret in rows:
        _row(s, 18, y, label, value, ink, 360, secret, 100)
        y += 46
    s.text((195, 548), c.pick(["STUDENT", "UNDERGRADUATE", "GRADUATE STUDENT"]), 28, (255, 255, 255), "stix-bold", "m")
    return s


def document(c: Ctx) -> Sheet:
    f = c.fake
    s, band, bg, ink = _setup(c, (452, 640), 0)
    s.img.paste((253, 253, 250, 255), (0, 0, 452, 640))
    _band(s, [0, 0, 452, 70], band)
    s.text((226, 18), c.pick(["APPLICATION FORM", "CLAIM FORM", "REGISTRATION FORM"]), 30, (255, 255, 255),
           "stix-bold", "m", max_width=430)
    d = ImageDraw.Draw(s.img)
    rows = [("Case no.", fake_number(c, "####-??-###"), True), ("Applicant", fit(f.name, 250, 24, s.font), True),
            ("Address", fit(f.street_address, 250, 24, s.font), True), ("Phone", phone(c), True),
            ("Date of birth", date(c), True)]
    y = 90
    for label, value, secret in rows[: 3 + c.rng.randint(1, 2)]:
        d.rectangle([16, y, 436, y + 44], outline=(120, 120, 120), width=1)
        d.line([160, y, 160, y + 44], fill=(120, 120, 120), width=1)
        s.text((24, y + 12), label, L, (80, 80, 80), "dejavu-sans")
        s.text((170, y + 8), value, 24, ink, max_width=260)
        s.field(label, value, secret)
        y += 44
    y += 24

    line = ""
    for wd in f.paragraph(nb_sentences=3).split():
        cand = (line + " " + wd).strip()
        if text_width(cand, 19, s.font) > 410 and line:
            s.text((20, y), line, 19, ink)
            y += 27
            line = wd
            if y > 540:
                break
        else:
            line = cand
    if line and y <= 540:
        s.text((20, y), line, 19, ink)
    s.text((20, 590), "Signature: ____________", 20, ink)
    return s


def credit_card(c: Ctx) -> Sheet:
    f = c.fake
    band, _, _ = c.pick(PALETTES)
    s = new_sheet((380, 600), band, 26, c.pick(["dejavu-mono-bold", "stix-bold", "dejavu-serif-bold"]))
    white = (250, 250, 250)
    s.text((30, 30), c.pick(["QUANTA", "HELIX", "VERTEX", "LUMEN"]), 34, white, "stix-bold")
    d = ImageDraw.Draw(s.img)
    d.rounded_rectangle([300, 40, 350, 110], radius=8, fill=(200, 200, 205))  # a vertical chip
    num = " ".join(fake_number(c, "####") for _ in range(4))
    s.text((24, 300), num, 30, white, "dejavu-mono-bold", max_width=340)
    s.field("Card no.", num)
    s.text((24, 360), "EXPIRES END", L, white, "dejavu-sans")
    exp = f"{c.rng.randint(1, 12):02d}/{c.rng.randint(27, 34)}"
    s.text((200, 356), exp, V, white)
    s.field("Expires end", exp)
    name = fit(lambda: f.name().upper(), 330, V, s.font)
    s.text((24, 420), name, V, white, max_width=340)
    s.field("Name", name)
    s.text((24, 520), c.pick(["DEBIT", "PLATINUM", "BUSINESS"]), 28, white, "dejavu-sans")
    return s


def drivers_license(c: Ctx) -> Sheet:
    f = c.fake
    s, band, bg, ink = _setup(c, (620, 390), 18)
    _band(s, [0, 330, 620, 390], band)
    s.text((20, 14), fit(lambda: f.state().upper() + " USA", 400, 26, "stix-bold"), 26, band, "stix-bold")
    s.text((20, 346), c.pick(["DRIVING PRIVILEGE CARD", "OPERATOR LICENSE"]), 26, (255, 255, 255), "stix-bold")
    face(s.img, (470, 60, 600, 230), c)
    rows = [("4d DLN", fake_number(c, c.pick(["#########", "??######"])), True),
            ("1 LAST", fit(lambda: f.last_name().upper(), 280, V, s.font), True),
            ("2 FIRST", fit(lambda: f.first_name().upper(), 280, V, s.font), True),
            ("3 DOB", date(c), True), ("8", fit(lambda: f.street_address().upper(), 340, V - 2, s.font), True),
            ("4b EXP", date(c, 2027, 2034), False)]
    y = 56
    for label, value, secret in rows:
        s.text((20, y + 4), label, L, (150, 20, 20), "dejavu-sans")
        s.text((110, y), value, V if label != "8" else V - 2, ink, max_width=450 - 110 if label != "8" else 490)
        s.field(label, value, secret)
        y += 44
    return s


def military_vehicle(c: Ctx) -> Sheet:
    """A boxy armoured truck seen from the side, a large stencilled number on its door and a bumper code."""
    S = 512
    forest = c.chance(0.5)
    sky = np.array(c.pick([(180, 190, 200), (110, 130, 150), (210, 200, 180)]), np.float32)
    gnd = np.array((60, 80, 50) if forest else (170, 150, 110), np.float32)
    hz = c.rng.randint(200, 280)
    arr = np.empty((S, S, 3), np.float32)
    arr[:hz] = sky
    arr[hz:] = gnd * np.linspace(0.85, 1.1, S - hz, dtype=np.float32)[:, None, None]
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    if forest:
        for x in range(-20, S, 34):
            h = c.rng.randint(60, 140)
            d.polygon([(x, hz), (x + 20, hz - h), (x + 40, hz)], fill=(30, 60, 35))
    hull = c.pick([(196, 170, 120), (90, 100, 70), (110, 110, 100), (70, 75, 60)])
    x0, y0 = c.rng.randint(10, 40), hz - c.rng.randint(40, 80)
    d.rectangle([x0, y0, x0 + 440, y0 + 150], fill=hull)
    d.polygon([(x0 + 300, y0), (x0 + 340, y0 - 70), (x0 + 440, y0 - 70), (x0 + 440, y0)], fill=hull)
    d.rectangle([x0 + 350, y0 - 60, x0 + 430, y0 - 20], fill=(60, 80, 90))
    for wx in (x0 + 80, x0 + 200, x0 + 370):
        d.ellipse([wx - 38, y0 + 120, wx + 38, y0 + 196], fill=(25, 25, 25))
        d.ellipse([wx - 14, y0 + 144, wx + 14, y0 + 172], fill=(80, 80, 80))
    s = Sheet(img, font="dejavu-mono-bold")
    stencil = (20, 20, 20) if sum(hull) > 420 else (235, 230, 200)
    serial = fake_number(c, c.pick(["## ### ##", "??-###", "#-??-##"]))
    unit = fake_number(c, c.pick(["B/##", "Co. ?#", "##-?"]))
    s.text((x0 + 30, y0 + 30), serial, 44, stencil, max_width=260)
    s.text((x0 + 300, y0 + 40), unit, 28, stencil, "stix-bold", max_width=130)
    s.field("Serial", serial)
    s.field("Unit", unit)
    return s


RENDERERS = {"passport": passport, "phone_number": phone_number, "receipt": receipt, "student_id": student_id,
             "document": document, "credit_card": credit_card, "drivers_license": drivers_license,
             "military_vehicle": military_vehicle}


# --------------------------------------------------------------------------- the held-out photo effects

def _surface(c: Ctx, size) -> Image.Image:
    w, h = size
    kind = c.pick(["marble", "checked", "dark_desk", "linen"])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "marble":
        veins = np.sin(xx * 0.02 + 4 * np.sin(yy * 0.013 + c.rng.uniform(0, 6)))
        arr = 225 + 20 * veins[:, :, None] * np.array([1, 1, 1.02], np.float32)
    elif kind == "checked":
        col = np.array(c.pick([(190, 40, 40), (40, 80, 160), (40, 120, 60)]), np.float32)
        chk = (((xx // 40) + (yy // 40)) % 2)[:, :, None]
        arr = 245 * chk + col * (1 - chk)
    elif kind == "dark_desk":
        base = np.array(c.pick([(45, 40, 38), (30, 35, 45), (55, 50, 40)]), np.float32)
        arr = base + 8 * np.sin(yy * 0.3)[:, :, None]
    else:
        arr = np.array((214, 204, 186), np.float32) + 6 * ((xx.astype(np.int32) % 4 < 2) ^ (yy.astype(np.int32) % 4 < 2))[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _hand_shadow(c: Ctx, size) -> np.ndarray:
    """A soft shadow of a hand and arm holding the camera, coming in from one edge (multiplier map)."""
    w, h = size
    m = Image.new("L", size, 0)
    d = ImageDraw.Draw(m)
    side = c.pick(["bottom", "right", "left"])
    cx = c.rng.uniform(0.3, 0.7)
    if side == "bottom":
        x = cx * w
        d.ellipse([x - 110, h - 160, x + 110, h + 200], fill=255)
        for k in range(4):
            d.rounded_rectangle([x - 90 + 45 * k, h - 250 + abs(k - 1.5) * 25, x - 62 + 45 * k, h - 120], 14, fill=255)
    else:
        y = cx * h
        x0 = w - 180 if side == "right" else -200
        d.ellipse([x0, y - 110, x0 + 380, y + 110], fill=255)
    m = m.filter(ImageFilter.GaussianBlur(c.rng.uniform(18, 30)))
    return 1.0 - c.rng.uniform(0.25, 0.4) * np.asarray(m, np.float32) / 255.0


def _compose(c: Ctx, card: Image.Image, style: str):
    cw, ch = card.size
    if style == "flat":  # a photocopy-like scan: grey bed, slight tone shift, no rotation
        m = 10
        img = Image.new("RGB", (cw + 2 * m, ch + 2 * m), (214, 214, 214))
        img.paste(card.convert("RGB"), (m, m), card.getchannel("A"))
        alpha = Image.new("L", img.size, 0)
        alpha.paste(card.getchannel("A"), (m, m))
        arr = np.asarray(img, np.float32) * c.rng.uniform(0.97, 1.02)
        arr = arr * np.array(c.pick([(1.0, 1.0, 1.0), (1.02, 1.0, 0.96)]), np.float32)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        a = np.asarray(alpha)
        return img, a > 200, a == 0
    frame = (640, 640) if c.chance(0.5) else ((480, 640) if ch > cw else (640, 480))
    fw, fh = frame
    ang = math.radians(c.rng.uniform(-9, 9))
    bw = cw * abs(math.cos(ang)) + ch * abs(math.sin(ang))
    bh = cw * abs(math.sin(ang)) + ch * abs(math.cos(ang))
    k = c.rng.uniform(0.82, 0.92) * min(fw / bw, fh / bh)
    cx, cy = fw / 2 + c.rng.uniform(-12, 12), fh / 2 + c.rng.uniform(-12, 12)
    # a keystone (camera tilted towards the top or the bottom) rather than random corner jitter
    tilt = c.rng.uniform(-0.05, 0.05)
    corners = []
    for px, py in ((-cw / 2, -ch / 2), (cw / 2, -ch / 2), (cw / 2, ch / 2), (-cw / 2, ch / 2)):
        px2 = px * (1 + tilt * (1 if py < 0 else -1))
        corners.append((cx + k * (px2 * math.cos(ang) - py * math.sin(ang)),
                        cy + k * (px2 * math.sin(ang) + py * math.cos(ang))))
    warped = warp_onto(card, frame, corners)
    alpha = warped.getchannel("A")
    img = _surface(c, frame)
    img.paste(warped.convert("RGB"), (0, 0), alpha)
    arr = np.asarray(img, np.float32)
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    vig = 1.0 - 0.35 * (((xx / fw - 0.5) ** 2 + (yy / fh - 0.5) ** 2) * 2) ** 1.5  # vignette
    mult = vig * (_hand_shadow(c, frame) if c.chance(0.6) else 1.0)
    cast = np.array(c.pick([(1.06, 1.0, 0.9), (0.92, 0.98, 1.08), (1.0, 1.0, 1.0)]), np.float32)
    arr = arr * mult[:, :, None] * cast
    arr += c.np.standard_normal(arr.shape, dtype=np.float32) * c.rng.uniform(1.5, 4.0)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if c.chance(0.5):  # a little camera shake
        img = img.filter(ImageFilter.Kernel((3, 3), [0, 0, 0, 1, 1, 1, 0, 0, 0], 3))
    img = jpeg(img, c.rng.randint(50, 80))
    a = np.asarray(alpha)
    return img, a > 200, a == 0


def _names(img, cm, bm) -> dict:
    a = np.asarray(img)
    out = {}
    for key, m in (("card", cm), ("background", bm)):
        px = a[m] if m is not None else a.reshape(-1, 3)
        out[key] = colour_name(np.median(px[:: max(1, len(px) // 20000)], axis=0)) if len(px) else None
    return out


def render(category: str, seed: int) -> Sample:
    """One held-out-style :class:`~ng_core.data.sample.Sample` of ``category``."""
    c = make_ctx(derive_seed("heldout", seed))
    sheet = RENDERERS[category](c)
    if category == "military_vehicle":
        img = jpeg(sheet.img.convert("RGB"), c.rng.randint(60, 85))
        style, cm, bm = "photo", None, None
        h, w = img.height, img.width
        cm = np.zeros((h, w), bool)
        cm[h // 3: 2 * h // 3, w // 4: 3 * w // 4] = True
        bm = np.zeros((h, w), bool)
        bm[: h // 8] = True
    else:
        style = "flat" if c.chance(0.4) else "photo"
        img, cm, bm = _compose(c, sheet.img, style)
    truth = {"fields": [list(f) for f in sheet.fields], "secrets": list(dict.fromkeys(sheet.secrets)),
             "lines": sheet.lines(), "style": style, "family": "heldout", "font": sheet.font,
             "colours": _names(img, cm, bm)}
    return Sample(img, truth)
