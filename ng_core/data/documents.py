"""Main-family private documents, drawn as cards in "card units" (1 unit = 1 output pixel in a flat scan).

Every renderer returns a :class:`~ng_core.data.draw.Sheet`: the RGBA card plus the text drawn on it, the
labelled fields and the private values (secrets). Values are drawn 24 units or larger and labels 17 or
larger, so that after a photo's scaling (0.75 or more) values stay about 16+ px and labels 12+ px high.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ng_core.data.draw import (Ctx, Sheet, barcode, date, deep, face, fake_number, fit, guilloche, ink, new_sheet, on, pastel,
                   phone, shade, signature, text_width, vivid, watermark)

#: Fonts of the main family (values); labels use DejaVu Sans or the same font.
MAIN_FONTS = ("dejavu-sans", "dejavu-sans-bold", "dejavu-mono", "dejavu-serif", "pil")

V, L = 25, 18  # value and label sizes (card units)
ID_W, ID_H = 600, 380


def _pick_font(c: Ctx) -> str:
    return c.pick(MAIN_FONTS)


def _label_font(c: Ctx, value_font: str) -> str:
    return value_font if c.chance(0.4) else c.pick(["dejavu-sans", "dejavu-sans-bold"])


def _grey(c: Ctx):
    return c.pick([(95, 95, 105), (110, 90, 90), (70, 90, 120), (100, 100, 100)])


# --------------------------------------------------------------------------- passport

def passport(c: Ctx) -> Sheet:
    f = c.fake
    fn = _pick_font(c)
    lf = _label_font(c, fn)
    country = f.country()
    w, h = c.rng.randint(600, 620), 430
    bgc = pastel(c)
    s = new_sheet((w, h), bgc, 10, fn)
    guilloche(s.img, c, shade(bgc, 0.9) + (255,), n=c.rng.randint(5, 10))
    tx, hdr, lab = ink(c), deep(c), _grey(c)
    plain = c.pick(["PASSPORT", "PASSPORT / PASSEPORT", "PASSPORT"])
    title = c.vary(plain, 0.35, ["PASAPORTE / PASSPORT", "TRAVEL DOCUMENT", "PASSPORT CARD", "E-PASSPORT"])
    s.text((16, 12), title, 28, hdr, "dejavu-sans-bold", max_width=None if title == plain else w // 2)
    s.text((w - 16, 16), country.upper()[:26], 20, hdr, "dejavu-sans-bold", "r", max_width=w // 2 - 40)
    photo_left = c.chance(0.7)
    pw, ph = 120, 160
    px = 16 if photo_left else w - 16 - pw
    face(s.img, (px, 56, px + pw, 56 + ph), c)
    signature(s.img, (px + 8, 56 + ph + 10, px + pw - 8, 56 + ph + 40), c)
    fx0 = px + pw + 18 if photo_left else 16
    full = w - pw - 50
    half = full // 2
    fw = lambda v: fit(v, full, V, fn)  # noqa: E731
    last = fw(lambda: f.last_name().upper())
    first = fw(lambda: f.first_name().upper() + (" " + f.first_name().upper() if c.chance(0.3) else ""))
    number = fake_number(c, c.pick(["?########", "??#######", "#########"]))
    rows = [[(c.vary("Passport No.", 0.4, ["Document No.", "Doc No.", "No.", "Number"]), number, True),
             ("Sex", c.pick(["F", "M"]), False)],
            [("Surname", last, True)], [("Given names", first, True)],
            [("Nationality", fw(lambda: country.upper()), False)],
            [("Date of birth", date(c), True), ("Date of expiry", date(c, 2026, 2036), False)],
            [("Place of birth", fw(lambda: f.city().upper()), True)]]
    if c.chance(0.5):
        rows[3], rows[5] = rows[5], rows[3]
    y = 50
    for row in rows:
        for col, (label, value, secret) in enumerate(row):
            x = fx0 + col * half
            s.text((x, y), label, L, lab, lf)
            s.text((x, y + L + 3), value, V, tx, max_width=(half if len(row) > 1 else full) - 8)
            s.field(label, value, secret)
        y += 50
    d = ImageDraw.Draw(s.img)
    d.rectangle([0, h - 74, w, h], fill=(246, 246, 240, 255))
    code = country[:3].upper().replace(" ", "<")
    mrz1 = f"P<{code}{last}<<{first}".replace(" ", "<").ljust(40, "<")[:40]
    mrz2 = f"{number}<{c.rng.randrange(10)}{code}{c.rng.randint(100000, 999999)}".ljust(40, "<")[:40]
    s.text((12, h - 68), mrz1, 22, (30, 30, 30), "dejavu-mono", max_width=w - 24)
    s.text((12, h - 36), mrz2, 22, (30, 30, 30), "dejavu-mono", max_width=w - 24)
    watermark(s.img, c)
    return s


# --------------------------------------------------------------------------- phone number

def phone_number(c: Ctx) -> Sheet:
    f = c.fake
    fn = _pick_font(c)
    num = phone(c)
    kind = c.pick(["card", "screen", "note", "sign"])
    if kind == "card":  # a business card
        w, h = c.rng.randint(580, 620), c.rng.randint(340, 370)
        bgc = pastel(c) if c.chance(0.7) else (250, 250, 250)
        s = new_sheet((w, h), bgc, 6, fn)
        acc = vivid(c)
        d = ImageDraw.Draw(s.img)
        if c.chance(0.5):
            d.rectangle([0, 0, 18, h], fill=acc)
        else:
            d.rectangle([0, h - 20, w, h], fill=acc)
        name = fit(f.name, w - 60, 36, fn)
        s.text((36, 30), name, 36, ink(c), "dejavu-sans-bold" if fn != "dejavu-serif" else "dejavu-serif-bold",
               max_width=w - 60)
        s.field("Name", name)
        s.text((36, 80), f.job()[:36], 22, (80, 80, 80), max_width=w - 60)
        lab = c.vary(c.pick(["Tel:", "Phone:", "Mobile:", "T"]), 0.3, ["Cell:", "Ph:", "Direct:", "Office:"])
        s.text((36, 150), f"{lab} {num}", 32, ink(c), max_width=w - 60)
        s.field(lab.rstrip(":"), num)
        email = fit(f.free_email, w - 60, 24, fn)
        s.text((36, 206), email, 24, (60, 60, 60), max_width=w - 60)
        s.field("Email", email)
        addr = fit(f.street_address, w - 60, 24, fn)
        s.text((36, 244), addr, 24, (60, 60, 60), max_width=w - 60)
        s.field("Address", addr)
        return s
    if kind == "screen":  # a phone showing the number in its dialer
        w, h = c.rng.randint(330, 360), c.rng.randint(600, 630)
        body = c.pick([(20, 20, 22), (230, 230, 235), (60, 60, 70), deep(c)])
        s = new_sheet((w, h), body, 36, fn)
        d = ImageDraw.Draw(s.img)
        scr = (250, 250, 252) if c.chance(0.6) else (25, 28, 35)
        txt = on(scr)
        d.rounded_rectangle([12, 40, w - 12, h - 40], radius=14, fill=scr)
        d.ellipse([w // 2 - 6, 14, w // 2 + 6, 26], fill=(90, 90, 90))
        name = f.first_name() + " " + f.last_name()
        s.text((w // 2, 80), name, 28, txt, anchor="m", max_width=w - 40)
        s.field("Contact", name)
        s.text((w // 2, 130), num, 34, txt, anchor="m", max_width=w - 36)
        s.field("Number", num)
        s.text((w // 2, 182), c.pick(["mobile", "calling...", "home", "work"]), 22, shade(txt, 0.7) if scr[0] > 128
               else (170, 170, 170), "dejavu-sans", "m")
        for r in range(4):
            for col in range(3):
                cx, cy = w // 2 + (col - 1) * 80, 270 + r * 70
                d.ellipse([cx - 28, cy - 28, cx + 28, cy + 28], fill=shade(scr, 0.9) if scr[0] > 128 else (60, 64, 75))
                s.text((cx, cy - 13), "123456789*0#"[r * 3 + col], 26, txt, "dejavu-sans", "m", record=False)
        d.ellipse([w // 2 - 30, h - 110, w // 2 + 30, h - 50], fill=(40, 190, 80))
        return s
    if kind == "note":  # a sticky note
        side = c.rng.randint(500, 540)
        col = c.pick([(255, 240, 120), (255, 200, 220), (190, 240, 200), (180, 220, 255), (255, 215, 150)])
        s = new_sheet((side, side), col, 3, fn)
        ImageDraw.Draw(s.img).rectangle([0, 0, side, 36], fill=shade(col, 0.93) + (255,))
        pen = c.pick([(20, 40, 140), (20, 20, 20), (160, 20, 30)])
        who = f.first_name()
        if c.vchance(0.5):  # a variant: a notice pinned to a board, the number to call on it
            return _notice(c, who, num, fn)
        s.text((36, 80), c.pick(["Call ", "Ring ", "Phone ", ""]) + who, 44, pen, max_width=side - 60)
        s.field("Name", who)
        s.text((36, 180), num, 46, pen, max_width=side - 60)
        s.field("Number", num)
        if c.chance(0.6):
            s.text((36, 290), c.pick(["after 6pm", "re: flat", "urgent", "tomorrow", "dentist"]), 34, pen)
        return s
    w, h = c.rng.randint(580, 620), c.rng.randint(300, 340)  # a shop sign
    col = vivid(c)
    s = new_sheet((w, h), col, 12, fn)
    ImageDraw.Draw(s.img).rounded_rectangle([10, 10, w - 10, h - 10], radius=10, outline=(255, 255, 255), width=4)
    fg = on(col)
    s.text((w // 2, 36), f.company()[:28].upper(), 30, fg, "dejavu-sans-bold", "m", max_width=w - 50)
    s.text((w // 2, 96), c.vary(c.pick(["CALL NOW", "BOOK TODAY", "FOR RENT", "24/7 SERVICE"]), 0.4,
                                ["TEXT OR CALL", "FREE QUOTES", "OPEN DAILY", "GIVE US A RING"]), 26, fg, "dejavu-sans", "m")
    s.text((w // 2, 160), num, 54, fg, "dejavu-sans-bold", "m", max_width=w - 50)
    s.field("Phone", num)
    return s


def _notice(c: Ctx, who: str, num: str, fn: str) -> Sheet:
    """A notice pinned to a board (lessons, a room, something found), with tear-off strips (variant draws only)."""
    v = c.var
    w, h = v.randint(500, 560), v.randint(600, 660)
    paper = v.choice([(250, 250, 246), (255, 244, 160), (200, 230, 255), (255, 214, 226), (214, 240, 214)])
    s = new_sheet((w, h), paper, 2, fn)
    head = v.choice(["GUITAR LESSONS", "ROOM TO LET", "FOUND: KEYS", "HOUSE CLEANING", "MATHS TUTOR",
                     "BABYSITTER", "CHOIR NEEDS YOU", "GARAGE SALE"])
    pen = v.choice([(20, 20, 20), (20, 40, 140), (150, 20, 30)])
    s.text((w // 2, 50), head, 42, pen, "dejavu-sans-bold", "m", max_width=w - 40)
    s.text((w // 2, 130), v.choice(["Friendly and reliable", "Reasonable rates", "Any questions?",
                                    "Weekends too"]), 26, pen, anchor="m", max_width=w - 40)
    s.text((w // 2, 190), v.choice(["call or text", "ring", "please phone", "contact"]) + f" {who}", 30, pen,
           anchor="m", max_width=w - 40)
    s.field("Name", who)
    s.text((w // 2, 260), num, 44, pen, "dejavu-sans-bold", "m", max_width=w - 40)
    s.field("Phone", num)
    d = ImageDraw.Draw(s.img)
    n = v.randint(6, 9)
    for i in range(n):  # tear-off strips: cut lines and the number written sideways (too small to read)
        x0 = int(i * w / n)
        d.line([x0, h - 150, x0, h], fill=(120, 120, 120), width=2)
        strip = Image.new("RGBA", (140, 24), (0, 0, 0, 0))
        ImageDraw.Draw(strip).text((2, 4), num, fill=pen + (255,))
        s.img.alpha_composite(strip.rotate(90, expand=True), (x0 + max(2, int(w / n / 2) - 12), h - 146))
    return s


# --------------------------------------------------------------------------- receipt

ITEMS = ["COFFEE", "BREAD", "MILK", "APPLES", "PASTA", "RICE", "TEA", "SOAP", "BATTERIES", "PEN", "NOTEBOOK",
         "JUICE", "CHEESE", "EGGS", "SALAD", "SANDWICH", "WATER", "CHOCOLATE"]


def receipt(c: Ctx) -> Sheet:
    f = c.fake
    fn = c.pick(["dejavu-mono", "dejavu-mono", "dejavu-sans", "pil", "dejavu-mono-bold"])
    w, h = c.rng.randint(380, 420), c.rng.randint(600, 630)
    paper = c.pick([(252, 252, 248), (245, 243, 235), (255, 255, 255), (240, 240, 245)])
    s = new_sheet((w, h), paper, 0, fn)
    d = ImageDraw.Draw(s.img)
    for x in range(0, w, 14):  # torn bottom edge
        d.polygon([(x, h), (x + 7, h - 8), (x + 14, h)], fill=(0, 0, 0, 0))
    tx = c.pick([(30, 30, 30), (40, 40, 70), (60, 50, 50)])
    centre = c.chance(0.7)
    ax, anc = (w // 2, "m") if centre else (16, "l")
    y = 14
    shop = f.company()[:22]
    s.text((ax, y), shop if c.vchance(0.3) else shop.upper(), 26, tx, "dejavu-sans-bold", anc, max_width=w - 24)
    y += 36
    heading = c.vary(None, 0.35, ["SALES RECEIPT", "RECEIPT", "TAX INVOICE", "CASH SALE", "ORDER SUMMARY"])
    if heading:
        s.text((ax, y), heading, 22, tx, "dejavu-sans-bold", anc)
        y += 30
    addr = fit(f.street_address, w - 24, 22, fn)
    s.text((ax, y), addr, 22, tx, anchor=anc, max_width=w - 24)
    s.field("Address", addr)
    y += 30
    when = date(c, 2019, 2025)
    s.text((ax, y), when, 22, tx, anchor=anc)
    s.field("Date", when, secret=False)
    y += 30
    ref = fake_number(c, c.pick(["#####", "######", "##-#####"]))
    lab = c.vary(c.pick(["Receipt #", "Trans.", "Invoice"]), 0.45, ["Order #", "Txn", "Ref.", "No.", "Check #", "Ticket"])
    s.text((ax, y), f"{lab} {ref}", 22, tx, anchor=anc)
    s.field(lab.strip("# ."), ref)
    y += 32
    d.line([12, y, w - 12, y], fill=tx, width=2)
    y += 10
    total = 0.0
    qty = c.vchance(0.4)
    if qty and c.vchance(0.5):
        s.text((16, y), c.vpick(["QTY ITEM", "QTY ITEM", "Qty Description", "ITEM", "Qty Article"]), 20, tx)
        s.text((w - 16, y), c.vpick(["PRICE", "PRICE", "AMT", "Sum", "EUR"]), 20, tx, anchor="r")
        y += 28
    for _ in range(c.rng.randint(3, 6)):
        price = c.rng.randint(50, 2500) / 100
        total += price
        item = c.pick(ITEMS)
        s.text((16, y), f"{c.vpick(['1', '1', '2', '3'])} {item}" if qty else item, 22, tx)
        s.text((w - 16, y), f"{price:.2f}", 22, tx, anchor="r")
        y += 30
    d.line([12, y, w - 12, y], fill=tx, width=2)
    y += 10
    s.text((16, y), c.vary("TOTAL", 0.35, ["TOTAL DUE", "BALANCE", "To pay", "GRAND TOTAL", "Paid"]), 26, tx,
           "dejavu-sans-bold")
    s.text((w - 16, y), f"{total:.2f}", 26, tx, "dejavu-sans-bold", "r")
    s.field("TOTAL", f"{total:.2f}", secret=False)
    y += 40
    last4 = fake_number(c, "####")
    card = c.pick(["VISA", "CARD", "DEBIT", "CREDIT"])
    s.text((16, y), f"{card} **** {last4}", 22, tx)
    s.field(card, last4)
    y += 30
    holder = fit(lambda: f.name().upper(), w - 32, 22, fn)
    s.text((16, y), holder, 22, tx, max_width=w - 32)
    s.field("Cardholder", holder)
    y += 36
    if y < h - 80:
        barcode(s.img, (24, y, w - 24, min(h - 50, y + 40)), c, tx)
        y += 48
    if y < h - 40:
        s.text((w // 2, y), c.pick(["THANK YOU", "PLEASE COME AGAIN", "HAVE A NICE DAY"]), 20, tx, anchor="m")
    return s


# --------------------------------------------------------------------------- student ID

def student_id(c: Ctx) -> Sheet:
    f = c.fake
    fn = _pick_font(c)
    lf = _label_font(c, fn)
    portrait = c.chance(0.3)
    w, h = (380, 600) if portrait else (ID_W, ID_H)
    bgc = (250, 250, 250) if c.chance(0.5) else pastel(c)
    s = new_sheet((w, h), bgc, 16, fn)
    d = ImageDraw.Draw(s.img)
    hc = deep(c) if c.chance(0.6) else vivid(c)
    hh = 84
    d.rounded_rectangle([0, 0, w - 1, hh], radius=16, fill=hc)
    d.rectangle([0, hh - 16, w - 1, hh], fill=hc)
    schools = [f"{f.city()} University", f"University of {f.city()}", f"{f.last_name()} College", f"{f.city()} Institute"]
    school = c.pick(schools)
    stem = schools[0][: -len(" University")]
    school = c.vary(school, 0.4, [f"{stem} Academy", f"{stem} State University", f"{stem} Technical College",
                                  f"{stem} Community College", f"{stem} School of Arts"])
    s.text((w // 2, 10), school.upper(), 26, on(hc), "dejavu-sans-bold", "m", max_width=w - 24)
    tag = c.vary("STUDENT ID", 0.5, ["STUDENT CARD", "STUDENT", "ID CARD", "CAMPUS CARD", None, None, None])
    if tag:
        s.text((w // 2, 48), tag, 22, on(hc), "dejavu-sans", "m")
    tx, lab = ink(c), _grey(c)
    sid = fake_number(c, c.pick(["########", "S#######", "##-####-##"]))
    rows = [(c.vary("Name", 0.3, ["Student", "Full name", "Holder"]), fit(f.name, (w - 190) if not portrait else (w - 140), V, fn), True),
            (c.vary("Student No.", 0.5, ["ID No.", "Student #", "ID", "Matric No.", "Number"]), sid, True),
            (c.vary("Date of birth", 0.3, ["Birth date", "DOB"]), date(c, 1995, 2007), True),
            ("Program", c.pick(["Biology", "History", "Engineering", "Law", "Music", "Physics", "Economics"]), False),
            ("Valid until", date(c, 2025, 2030), False)]
    if portrait:
        face(s.img, (w // 2 - 65, hh + 14, w // 2 + 65, hh + 180), c)
        y = hh + 194
        for label, value, secret in rows[:4]:
            s.text((18, y), f"{label}: ", L + 2, lab, lf)
            lw = s.items[-1].w
            s.text((18 + lw + 10, y - 3), value, V, tx, max_width=w - lw - 40)
            s.field(label, value, secret)
            y += 40
        barcode(s.img, (30, h - 50, w - 30, h - 18), c)
    else:
        face(s.img, (18, hh + 16, 148, hh + 186), c)
        y = hh + 8
        for label, value, secret in rows[: 4 + c.rng.randint(0, 1)]:
            s.text((170, y), label, L, lab, lf)
            s.text((170, y + L + 3), value, V, tx, max_width=w - 190)
            s.field(label, value, secret)
            y += 54 if len(rows) == 4 else 48
        if y < h - 30:
            barcode(s.img, (18, h - 40, 148, h - 14), c)
    watermark(s.img, c)
    return s


# --------------------------------------------------------------------------- document

def _wrap(s: Sheet, x: int, y: int, text: str, size: int, col, width: int, y_max: int, name=None) -> int:
    name = name or s.font
    line = ""
    for wd in text.split():
        cand = (line + " " + wd).strip()
        if text_width(cand, size, name) > width and line:
            if y > y_max:
                return y
            s.text((x, y), line, size, col, name)
            y += int(size * 1.35)
            line = wd
        else:
            line = cand
    if line and y <= y_max:
        s.text((x, y), line, size, col, name)
        y += int(size * 1.35)
    return y


def document(c: Ctx) -> Sheet:
    f = c.fake
    fn = c.pick(["dejavu-serif", "dejavu-serif", "dejavu-sans", "pil", "dejavu-mono"])
    w, h = c.rng.randint(440, 460), 630
    paper = c.pick([(255, 255, 255), (250, 248, 240), (245, 245, 250), (240, 236, 222)])
    s = new_sheet((w, h), paper, 0, fn)
    d = ImageDraw.Draw(s.img)
    tx = ink(c)
    head = deep(c) if c.chance(0.5) else tx
    m = c.rng.randint(22, 32)
    y = 18
    s.text((m, y), f.company()[:30], 24, head, "dejavu-sans-bold", max_width=w - 2 * m)
    y += 34
    if c.chance(0.6):
        tel = phone(c)
        s.text((m, y), f"Tel. {tel}", 20, head)
        s.field("Tel.", tel)
        y += 28
    d.line([m, y, w - m, y], fill=head, width=2)
    y += 14
    title = c.vary(c.pick(["MEMORANDUM", "CONFIDENTIAL REPORT", "INTERNAL NOTICE", "LETTER", "BRIEFING", "CONTRACT"]),
                   0.35, ["APPLICATION", "STATEMENT", "AGREEMENT", "MINUTES", "NOTICE OF CHANGE", "CERTIFICATE",
                          "ENROLMENT FORM", "REQUEST FORM", "COMPLAINT", "PERMIT"])
    centred = c.chance(0.6)
    s.text((w // 2 if centred else m, y), title, 28, head, "dejavu-sans-bold", "m" if centred else "l",
           max_width=w - 2 * m)
    y += 44
    nm = lambda: fit(f.name, w - 2 * m - 80, 22, fn)  # noqa: E731
    rows = [(c.vary("To", 0.3, ["Recipient", "Attn", "Addressee", "Name"]), nm(), True),
            (c.vary("From", 0.3, ["Sender", "Issued by", "Officer", "Signed"]), nm(), True), ("Date", date(c, 2015, 2025), False),
            (c.vary("Ref", 0.5, ["Reference", "Ref. no.", "File no.", "Doc. no.", "Our ref", "Claim ref.", "Form no."]),
             fake_number(c, "??-####/##"), True)]
    keep = rows[:2] + [r for r in rows[2:] if c.chance(0.7)]
    if not any(r is rows[3] for r in keep) and c.chance(0.5):
        keep.append(rows[3])
    for label, value, secret in keep:
        s.text((m, y), f"{label}: {value}", 22, tx, max_width=w - 2 * m)
        s.field(label, value, secret)
        y += 32
    y += 10
    size = c.rng.randint(17, 19)
    for _ in range(c.rng.randint(1, 3)):
        y = _wrap(s, m, y, f.paragraph(nb_sentences=c.rng.randint(2, 3)), size, tx, w - 2 * m, h - 130)
        y += 10
    signature(s.img, (m, h - 104, m + 150, h - 64), c)
    signer = keep[1][1]
    s.text((m, h - 56), signer, 22, tx)
    if c.chance(0.6):  # a stamp (not read as text: rotated, translucent)
        st = Image.new("RGBA", (240, 80), (0, 0, 0, 0))
        sd = ImageDraw.Draw(st)
        red = c.pick([(200, 30, 40), (40, 60, 170), (30, 130, 60)])
        sd.rectangle([2, 2, 237, 77], outline=red + (150,), width=5)
        sub = Sheet(st, font="dejavu-sans-bold")
        sub.text((120, 24), c.pick(["CONFIDENTIAL", "SECRET", "APPROVED", "RESTRICTED"]), 28, red + (150,),
                 anchor="m", max_width=220)
        st = st.rotate(c.rng.uniform(-30, 30), expand=True, resample=Image.BICUBIC)
        s.img.alpha_composite(st, (c.rng.randint(w // 3, max(w // 3, w - st.width - 5)), h - 40 - st.height))
    return s


# --------------------------------------------------------------------------- unseen categories

def credit_card(c: Ctx) -> Sheet:
    f = c.fake
    fn = c.pick(["dejavu-sans", "dejavu-sans-bold", "dejavu-mono", "dejavu-mono-bold", "pil"])
    w, h = ID_W, ID_H
    col1, col2 = deep(c), (vivid(c) if c.chance(0.5) else deep(c))
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    arr = np.array(col1, np.float32) * (1 - t) + np.array(col2, np.float32) * t
    grad = Image.fromarray(np.broadcast_to(arr, (h, w, 3)).astype(np.uint8), "RGB")
    s = new_sheet((w, h), (0, 0, 0), 24, fn)
    s.img.paste(grad, (0, 0), s.img.getchannel("A"))
    d = ImageDraw.Draw(s.img)
    fg = (245, 245, 245) if sum(col1) + sum(col2) < 760 else (20, 20, 20)
    bank = c.vary(c.pick([f"{f.last_name()} Bank", f"{f.city()} Credit", f"{f.last_name()} Financial"]), 0.5,
                  ["ARGENTA", "KESTREL", "MERIDIAN", "SOLSTICE", "CIRRUS ONE", "TALLY", "OBSIDIAN", "PRISMA"])
    s.text((34, 26), bank, 28, fg, "dejavu-sans-bold", max_width=w - 200)
    d.rounded_rectangle([44, 110, 128, 172], radius=9, fill=(212, 180, 90))  # chip
    for yy in (130, 152):
        d.line([44, yy, 128, yy], fill=(150, 120, 50), width=2)
    d.line([86, 110, 86, 172], fill=(150, 120, 50), width=2)
    num = " ".join(fake_number(c, "####") for _ in range(4))
    s.text((44, 196), num, 40, fg, max_width=w - 70)
    s.field("Card number", num)
    s.text((44, 266), c.vary("VALID THRU", 0.45, ["GOOD THRU", "EXPIRES", "EXP", "VALID TO"]), 17, fg, "dejavu-sans")
    exp = f"{c.rng.randint(1, 12):02d}/{c.rng.randint(26, 33)}"
    s.text((170, 260), exp, 26, fg)
    s.field("Valid thru", exp)
    tier = c.vary(None, 0.5, ["GOLD", "CLASSIC", "REWARDS", "BUSINESS", "SIGNATURE", "CREDIT"])
    if tier:
        s.text((w - 34, 30), tier, 20, fg, "dejavu-sans-bold", "r")
    name = fit(lambda: f.name().upper(), w - 220, 28, fn)
    s.text((44, 310), name, 28, fg, max_width=w - 220)
    s.field("Cardholder", name)
    s.text((w - 30, h - 60), c.pick(["NOVA", "ORBIT", "ZENO", "PAYLINK", "AURA"]), 30, fg, "dejavu-sans-bold", "r")
    watermark(s.img, c)
    return s


def drivers_license(c: Ctx) -> Sheet:
    f = c.fake
    fn = _pick_font(c)
    lf = _label_font(c, fn)
    w, h = ID_W, ID_H
    bgc = pastel(c)
    s = new_sheet((w, h), bgc, 16, fn)
    guilloche(s.img, c, shade(bgc, 0.9) + (255,), n=c.rng.randint(4, 8))
    d = ImageDraw.Draw(s.img)
    hc = deep(c)
    d.rounded_rectangle([0, 0, w - 1, 62], radius=16, fill=hc)
    d.rectangle([0, 46, w - 1, 62], fill=hc)
    s.text((18, 14), f.state().upper(), 26, (255, 255, 255), "dejavu-sans-bold", max_width=w // 2 - 30)
    title = c.vary(c.pick(["DRIVER LICENSE", "DRIVER'S LICENSE"]), 0.5,
                   ["DRIVING LICENCE", "OPERATOR LICENSE", "LICENSE", "CLASS C LICENSE", None, None])
    if title:
        s.text((w - 18, 17), title, 24, (255, 255, 255), "dejavu-sans-bold", "r", max_width=w // 2 - 20)
    photo_left = c.chance(0.8)
    px = 18 if photo_left else w - 158
    face(s.img, (px, 78, px + 140, 258), c)
    signature(s.img, (px + 6, 272, px + 140, 320), c)
    fx = 180 if photo_left else 18
    tx, red = ink(c), c.pick([(170, 30, 30), (30, 60, 150), (90, 90, 90)])
    rows = [(c.vary("DL", 0.5, ["LIC NO", "DL NO", "LIC#", "NO.", "ID", "NUMBER"]),
             fake_number(c, c.pick(["?#######", "########", "?###-####-####"])), True),
            (c.vary("DOB", 0.3, ["BIRTH DATE", "DATE OF BIRTH"]), date(c, 1950, 2006), True),
            (c.vary("EXP", 0.3, ["EXPIRES", "EXP DATE"]), date(c, 2026, 2033), False)]
    y = 76
    for label, value, secret in rows:
        lw, _ = s.text((fx, y + 4), label, L, red, lf)
        vx = fx + max(66, lw + 12)
        s.text((vx, y), value, V + 1, tx, max_width=w - vx - 24)
        s.field(label, value, secret)
        y += 40
    avail = w - 180 - 24
    name = fit(lambda: f.name().upper(), avail, V + 1, fn)
    s.text((fx, y), name, V + 1, tx, max_width=w - fx - 24)
    s.field("Name", name)
    y += 38
    addr = fit(lambda: f.street_address().upper(), avail, V, fn)
    s.text((fx, y), addr, V, tx, max_width=w - fx - 24)
    s.field("Address", addr)
    y += 36
    city = fit(lambda: f"{f.city().upper()}, {f.state_abbr()} {f.zipcode()}", avail, V, fn)
    s.text((fx, y), city, V, tx, max_width=w - fx - 24)
    s.field("City", city)
    y += 40
    cls, sex = c.pick(["C", "D", "B", "A"]), c.pick(["F", "M"])
    s.text((fx, y + 4), "CLASS", L, red, lf)
    s.text((fx + 84, y), cls, V, tx)
    s.text((fx + 150, y + 4), "SEX", L, red, lf)
    s.text((fx + 206, y), sex, V, tx)
    s.field("CLASS", cls, False)
    s.field("SEX", sex, False)
    watermark(s.img, c)
    return s


RENDERERS = {
    "passport": passport,
    "phone_number": phone_number,
    "receipt": receipt,
    "student_id": student_id,
    "document": document,
    "credit_card": credit_card,
    "drivers_license": drivers_license,
}
