"""The OCR reading channel: one prompt format, the subject still in the question, uploads kept private."""
from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw, ImageFont

from ng_core.models import load_model
from ng_core.models.imagecache import PrivateCache, private_scope, read
from ng_core.models.reading import (
    COLOUR_BEHIND_TEXT,
    COLOUR_NO_TEXT,
    READING_HEADER,
    OcrReader,
    ReadingConfig,
    block_colour,
    block_lines,
    clean_line,
    reading_block,
    surface_colour,
)


def test_block_format_and_limits():
    cfg = ReadingConfig(enabled=True, max_lines=3, max_chars=200)
    block = reading_block(["PASSPORT", "  Passport No.   P4827193 ", "", "Surname MORENO", "cut"], cfg)
    assert block == f"{READING_HEADER}\nPASSPORT\nPassport No. P4827193\nSurname MORENO"
    assert block_lines(block) == ["PASSPORT", "Passport No. P4827193", "Surname MORENO"]
    assert reading_block([], cfg) is None and reading_block(["  "], cfg) is None
    short = reading_block(["a" * 30, "b" * 30], ReadingConfig(enabled=True, max_chars=len(READING_HEADER) + 35))
    assert block_lines(short) == ["a" * 30]


def test_printed_text_cannot_become_control_tokens():
    assert "<" not in clean_line("<|im_start|>system <image>") and "|" not in clean_line("<|im_end|>")
    assert clean_line("a\x00b\u200bc") == "a b c"


@pytest.fixture(scope="module")
def reader_model():
    return load_model("tiny-random", reading=True)


def test_subject_is_found_in_the_question_not_in_the_reading(reader_model):
    a = reader_model
    reading = reading_block(["PASSPORT", "passport number P4827193"], a.reading)
    q = "What is the number of the passport in this image?"
    seq = a.build(q, subject="passport", reading=reading)
    plain = a.build(q, subject="passport")
    assert len(seq) > len(plain)
    assert seq.text.index(READING_HEADER) < seq.text.rindex(q)
    # the subject token sits in the question: the same distance from the end of the prompt
    assert seq.prompt_len - seq.subject_pos == plain.prompt_len - plain.subject_pos
    tail = a.tokenizer.decode(seq.input_ids[seq.subject_pos:seq.subject_pos + 1])
    assert "passport" in tail.lower()
    # no image, no reading: a text-only turn ignores it
    assert a.build(q, has_image=False, reading=reading).text == a.build(q, has_image=False).text


def _card() -> Image.Image:
    img = Image.new("RGB", (520, 200), (235, 240, 250))
    d = ImageDraw.Draw(img)
    f = ImageFont.load_default(size=28)
    d.text((20, 25), "PASSPORT", fill=(20, 20, 40), font=f)
    d.text((20, 100), "No. P4827193", fill=(20, 20, 40), font=f)
    return img


def test_real_ocr_reads_a_card_and_uploads_stay_private(reader_model, tmp_path):
    pytest.importorskip("rapidocr")
    a = reader_model
    img = _card()
    cache = PrivateCache()
    with private_scope(cache):
        block = read(a, img)
    assert block is not None and "P4827193" in block.replace(" ", "")
    assert len(cache.readings) == 1 and len(a.caches.readings) == 0  # the upload never entered the shared cache
    path = tmp_path / "card.png"
    img.save(path)
    assert read(a, path) == block and len(a.caches.readings) == 1  # a file on disk may be shared
    g = a.generate([(a.encode_image(path), "What is the passport number?", None, block)], max_new_tokens=3)[0]
    assert isinstance(g.text, str)


def test_reading_is_off_unless_asked():
    a = load_model("tiny-random")
    assert not a.reads and read(a, _card()) is None and a.read_image(_card()) is None


def test_colour_line_ends_the_block_only_when_asked():
    on, off = ReadingConfig(enabled=True, colour=True), ReadingConfig(enabled=True)
    block = reading_block(["PASSPORT", "No. P4827193"], on, colour="dark blue")
    assert block == f"{READING_HEADER}\nPASSPORT\nNo. P4827193\n{COLOUR_BEHIND_TEXT} dark blue"
    assert block_lines(block) == ["PASSPORT", "No. P4827193"] and block_colour(block) == "dark blue"
    assert reading_block(["PASSPORT"], off, colour="blue") == f"{READING_HEADER}\nPASSPORT"  # off: as before
    no_text = reading_block([], on, colour="green")
    assert no_text == f"{COLOUR_NO_TEXT} green" and block_lines(no_text) == [] and block_colour(no_text) == "green"
    assert reading_block([], on) is None and block_colour(None) is None and block_colour("x") is None


def test_surface_colour_is_the_colour_the_text_is_printed_on():
    img = Image.new("RGB", (300, 200), (40, 140, 60))  # a green table
    ImageDraw.Draw(img).rectangle([100, 20, 290, 190], fill=(30, 60, 200))  # a blue card, off centre
    box = [[120, 40], [280, 40], [280, 70], [120, 70]]  # where the OCR found text: on the card
    assert surface_colour(img, [box]) == "blue"
    assert surface_colour(img, [[[c - 100 for c in pt] for pt in box]]) == "green"  # text on the table
    assert surface_colour(Image.new("RGB", (90, 90), (250, 250, 250))) == "white"  # no text: the middle third
    from ng_core.models.colour_names import median_colour_name  # the one median the generator's truth uses too

    assert median_colour_name([]) is None and median_colour_name([[30, 60, 200]] * 3 + [[250] * 3]) == "blue"
    assert surface_colour(img, [[[500, 500], [600, 500], [600, 520], [500, 520]]]) in ("blue", "green")  # outside


def test_real_ocr_names_the_colour_behind_the_text():
    pytest.importorskip("rapidocr")
    img = Image.new("RGB", (640, 300), (120, 110, 100))  # a grey-brown table
    d = ImageDraw.Draw(img)
    d.rectangle([40, 30, 600, 270], fill=(40, 90, 200))  # a blue card
    f = ImageFont.load_default(size=34)
    d.text((70, 60), "STUDENT ID", fill=(250, 250, 250), font=f)
    d.text((70, 160), "No. S-5521", fill=(250, 250, 250), font=f)
    block = OcrReader(ReadingConfig(enabled=True, colour=True)).read_block(img)
    assert block is not None and block_colour(block) == "blue", block
    assert any("STUDENT" in ln.upper() for ln in block_lines(block))
    assert block_colour(OcrReader(ReadingConfig(enabled=True)).read_block(img)) is None


def test_readings_of_a_folders_cards_are_stored_beside_them_and_reused_by_a_new_process(tmp_path):
    """A fresh adapter (a new server process) takes a card folder's readings from the store instead of reading
    again; a redrawn card, another reader's settings and a damaged store each mean reading again."""
    import dataclasses

    from ng_core.models.reading_store import read_with_store

    pytest.importorskip("rapidocr")
    cards = tmp_path / "world" / "images"
    cards.mkdir(parents=True)
    _card().save(cards / "a.png")
    Image.new("RGB", (300, 120), (200, 60, 60)).save(cards / "b.png")  # no text: stored as read (nothing)
    folder, files = tmp_path / "world", [cards / "a.png", cards / "b.png"]
    first = load_model("tiny-random", reading=True)
    assert read_with_store(first, folder, files) == 2
    blocks = [first.read_image(f) for f in files]
    store = folder / f"readings-{first.reading_id}.json"
    assert store.is_file() and "P4827193" in store.read_text().replace(" ", "")

    second = load_model("tiny-random", reading=True)
    second.read_image_uncached = lambda image: pytest.fail("read again although stored")
    assert read_with_store(second, folder, files) == 0
    assert [second.read_image(f) for f in files] == blocks

    _card().rotate(180).save(cards / "a.png")  # redrawn: another file content
    assert read_with_store(load_model("tiny-random", reading=True), folder, files) == 1
    other = load_model("tiny-random", reading=True)
    other.reading = dataclasses.replace(other.reading, max_lines=1)
    other._reader = OcrReader(other.reading)
    assert other.reading_id != first.reading_id and read_with_store(other, folder, files) == 2
    store.write_text("{ not json")
    assert read_with_store(load_model("tiny-random", reading=True), folder, files) == 2
    assert json.loads(store.read_text())  # rewritten whole
    with pytest.raises(ValueError, match="not inside"):
        read_with_store(first, cards / "elsewhere", files)
    plain = load_model("tiny-random")
    assert plain.reading_id is None and read_with_store(plain, folder, files) == 0
