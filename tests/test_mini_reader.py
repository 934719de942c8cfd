"""The reader stage: LoRA factors merged at assembly give the model peft trained, and the QA it learns from."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from ng_core.errors import ModelLoadError
from ng_core.models.mini import reader_lora as MR
from ng_core.models.tiny_random import build_tiny_random
from ng_train.mini.train_reader_turns import field_for, privacy_turn


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merged_reader_equals_the_peft_model(tmp_path):
    peft = pytest.importorskip("peft")
    from safetensors.torch import save_file

    base, _, _ = build_tiny_random(seed=3)
    trained, _, _ = build_tiny_random(seed=3)
    ids = torch.randint(0, 200, (1, 12))
    before = _logits(base, ids)
    pm = peft.get_peft_model(trained, peft.LoraConfig(r=4, lora_alpha=8, target_modules=MR.LORA_TARGET_REGEX))
    assert sum(1 for n, _ in pm.named_modules() if n.endswith("q_proj.lora_A")) == trained.config.text_config.num_hidden_layers
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(n)))
    want = _logits(pm, ids)
    assert not torch.allclose(want, before)
    save_file({k: v.contiguous() for k, v in peft.get_peft_model_state_dict(pm).items()}, str(tmp_path / "lora.safetensors"))
    save_file({k: v.contiguous() for k, v in base.model.multi_modal_projector.state_dict().items()},
              str(tmp_path / "projector.safetensors"))
    (tmp_path / "reader.json").write_text(json.dumps({"lora": {"r": 4, "alpha": 8}}))
    reader = MR.shipped_reader(tmp_path)
    MR.apply_reader(base, reader)
    assert type(base).__name__ == "LlavaForConditionalGeneration"
    assert not any("lora" in n for n, _ in base.named_parameters())  # merged: a plain model again
    torch.testing.assert_close(_logits(base, ids), want, atol=1e-5, rtol=1e-4)


def test_a_changed_reader_file_is_refused(tmp_path):
    (tmp_path / "lora.safetensors").write_bytes(b"x")
    (tmp_path / "projector.safetensors").write_bytes(b"y")
    (tmp_path / "reader.json").write_text(json.dumps({"sha256": {"lora.safetensors": "0" * 64}}))
    with pytest.raises(ModelLoadError, match="does not match the sha256"):
        MR.shipped_reader(tmp_path)
    (tmp_path / "reader.json").write_text("{}")
    (tmp_path / "projector.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="incomplete"):
        MR.shipped_reader(tmp_path)
    assert MR.shipped_reader(tmp_path / "none") is None


PASSPORT = {"fields": [["Passport No.", "P4827193"], ["Surname", "MORENO"], ["Given names", "ANA"],
                       ["Date of birth", "12 MAR 1987"], ["Nationality", "SPAIN"]],
            "secrets": ["P4827193", "MORENO", "ANA", "12 MAR 1987"]}


def test_attributes_map_to_the_true_field():
    readable = set(PASSPORT["secrets"])
    assert field_for("ID number", PASSPORT["fields"], readable) == "P4827193"
    assert field_for("holder's name", PASSPORT["fields"], readable) == "ANA MORENO"
    assert field_for("date of birth", PASSPORT["fields"], readable) == "12 MAR 1987"
    assert field_for("owner's occupation", PASSPORT["fields"], readable) is None
    assert field_for("ID number", PASSPORT["fields"], readable - {"P4827193"}) is None  # not read: not answered


def test_privacy_answers_only_copy_what_was_read():
    reading = "Text read from the image:\nPASSPORT\nPassport No.\nP4827193\nSurname\nMORENO"
    rng = random.Random(0)
    answers = [privacy_turn("passport", PASSPORT, reading, rng)[1] for _ in range(60)]
    assert any("P4827193" in a for a in answers)
    assert not any("12 MAR 1987" in a or "ANA" in a.split() for a in answers)  # never read: never answered
    assert any("does not show" in a for a in answers)


def test_card_section_quotes_the_files_and_marks_missed_targets(tmp_path):
    from ng_train.mini import reader_card
    assert reader_card.section(tmp_path) == [] and "cannot read" in reader_card.limitation(tmp_path)
    meta = {"config": {"n_per_category": 64, "steps": 360, "batch_size": 8, "lr": 3e-4, "projector_lr": 1e-4,
                       "mix": {"privacy": 0.5, "type": 0.5}},
            "lora": {"parameters": 4_883_456, "r": 16, "alpha": 32, "dtype": "bfloat16"},
            "timings_s": {"total_s": 3600, "data_s": 600, "train_s": 2900}, "command": "python -m x",
            "device": "cpu", "threads": 2, "loss": {"first": 2.5, "last_avg": 0.2}}
    (tmp_path / "reader.json").write_text(json.dumps(meta))
    rates = {c: {"type": 0.9, "privacy": 0.5, "privacy_answerable": 0.8, "colour": 0.6} for c in ("passport", "receipt")}
    ev = {"command": "python -m ng_train.mini.eval_reader", "quality": {
        "per_category": 10, "max_new_tokens": 24, "rates": {"heldout": rates},
        "pooled": {"heldout": {"type": 0.9, "privacy": 0.5, "privacy_answerable": 0.8, "colour": 0.6}},
        "general": {"text_only_right": 6, "with_image_right": 5, "n": 12}},
        "base_general_text_only": {"right": 6, "n": 12},
        "speed": {"runs": 5, "threads": 2, "ocr_plus_32_tokens_median_s": 3.1, "ocr_median_s": 0.6}}
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    text = "\n".join(reader_card.section(tmp_path))
    assert "4.88M LoRA parameters" in text and "| passport | 90% | 80% (50%) | 60% |" in text
    assert "| colour questions right (held-out style) | 60% (most held-out cards are white; not split" in text
    assert text.split("colour questions right")[1].split("\n")[0].endswith("| **no** |")  # unsure: not met
    # with the split, the target is judged on the cards that are not white, never on the white majority
    ev["quality"]["pooled"]["heldout"].update(colour=0.8, colour_non_white=0.1, colour_if_always_white=0.8)
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    row = "\n".join(reader_card.section(tmp_path)).split("colour questions right")[1].split("\n")[0]
    assert "on cards that are not white 10%" in row and "would score 80%" in row and row.endswith("| **no** |")
    ev["quality"]["pooled"]["heldout"].update(colour_non_white=0.75)
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    row = "\n".join(reader_card.section(tmp_path)).split("colour questions right")[1].split("\n")[0]
    assert row.endswith("| yes |")
    ev["quality"]["pooled"]["heldout"].update(colour=0.6, colour_non_white=None)
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    text = "\n".join(reader_card.section(tmp_path))
    assert "| 80% (all privacy questions: 50%) | ≥ 70% | yes |" in text
    assert "5/12 with an image" in text and "| **no** |" in text.split("general questions")[1].split("\n")[0]
    assert "reads through an OCR" in reader_card.limitation(tmp_path)
    assert "Colour behind the text" not in text and not reader_card.reads_colour(tmp_path)
    # a continued reader trained with the colour line and swapped type turns says so, from its own record
    meta.update(reading={"enabled": True, "colour": True}, turns={"type": 40, "type_swapped": 13},
                started_from={"reader": {"command": "python -m first"}})
    meta["config"]["type_swap_share"] = 0.35
    (tmp_path / "reader.json").write_text(json.dumps(meta))
    text = "\n".join(reader_card.section(tmp_path))
    assert "\nColour behind the text: blue\n" in text and reader_card.reads_colour(tmp_path)
    assert "Trained in 2 runs" in text and "(1) `python -m first`; (2) the run below" in text
    assert "In 35% of the type turns" in text and "(13 turns)" in text
    meta["started_from"] = {"reader": {"command": "python -m second", "started_from": {"reader": {"command": "python -m first"}}}}
    (tmp_path / "reader.json").write_text(json.dumps(meta))
    assert "Trained in 3 runs" in "\n".join(reader_card.section(tmp_path))
    assert reader_card.earlier_runs(meta) == ["python -m first", "python -m second"]
    assert "Code of the run" not in "\n".join(reader_card.section(tmp_path))  # older records have no commit
    meta["code"] = "0123abc-dirty"
    (tmp_path / "reader.json").write_text(json.dumps(meta))
    assert "commit `0123abc`, with uncommitted changes." in "\n".join(reader_card.section(tmp_path))
    assert "measured behind the text" in reader_card.limitation(tmp_path)


def test_eval_reader_judges_colour_and_answerable_questions():
    from ng_train.mini.eval_reader import answerable, colour_right

    assert colour_right("The card is mostly blue.", "dark blue") and colour_right("It is grey.", "grey")
    assert colour_right("It is mostly gray.", "grey") and not colour_right("It is mostly white.", "blue")
    assert colour_right("anything", None) is None
    assert answerable("passport", "I'd like to know the ID number of the passport shown here.", PASSPORT)
    assert answerable("passport", "Look at the passport in the photo. What is its holder's name?", PASSPORT)
    assert not answerable("passport", "What is the owner's occupation of the passport in the photo?", PASSPORT)
    assert not answerable("chart", "What is the title of the chart?", {"fields": [], "secrets": []})


def test_a_continued_run_starts_from_the_saved_reader(tmp_path):
    """``init_from``: the LoRA factors and projector of a saved reader are where the new run starts, exactly."""
    peft = pytest.importorskip("peft")
    from safetensors.torch import save_file

    from ng_train.mini.train_reader import ReaderTrainConfig, load_start

    saved, _, _ = build_tiny_random(seed=3)
    pm = peft.get_peft_model(saved, peft.LoraConfig(r=4, lora_alpha=8, target_modules=MR.LORA_TARGET_REGEX))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(n)))
        saved.model.multi_modal_projector.linear_1.weight.add_(0.5)
    save_file({k: v.contiguous() for k, v in peft.get_peft_model_state_dict(pm).items()}, str(tmp_path / "lora.safetensors"))
    save_file({k: v.contiguous() for k, v in saved.model.multi_modal_projector.state_dict().items()},
              str(tmp_path / "projector.safetensors"))
    (tmp_path / "reader.json").write_text(json.dumps({"lora": {"r": 4, "alpha": 8, "target_modules": MR.LORA_TARGET_REGEX},
                                                      "command": "first run"}))
    ids = torch.randint(0, 200, (1, 12))
    want = _logits(pm, ids)

    fresh, _, _ = build_tiny_random(seed=3)
    pf = peft.get_peft_model(fresh, peft.LoraConfig(r=4, lora_alpha=8, target_modules=MR.LORA_TARGET_REGEX))
    assert not torch.allclose(_logits(pf, ids), want)
    rec = load_start(pf, fresh.model.multi_modal_projector, ReaderTrainConfig(lora_r=4, init_from=str(tmp_path)))
    torch.testing.assert_close(_logits(pf, ids), want)
    torch.testing.assert_close(fresh.model.multi_modal_projector.linear_1.weight,
                               saved.model.multi_modal_projector.linear_1.weight)
    assert rec["reader"]["command"] == "first run" and set(rec["sha256"]) == {"lora.safetensors", "projector.safetensors"}
    with pytest.raises(ValueError, match="r=4"):
        load_start(pf, fresh.model.multi_modal_projector, ReaderTrainConfig(lora_r=16, init_from=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="holds no reader"):
        load_start(pf, fresh.model.multi_modal_projector, ReaderTrainConfig(lora_r=4, init_from=str(tmp_path / "no")))


def test_colour_turns_name_the_measured_card_colour():
    from ng_train.mini.train_reader_turns import colour_turn

    rng = random.Random(0)
    for _ in range(20):
        q, a = colour_turn("passport", {"colours": {"card": "dark green"}}, rng)
        assert "passport" in q.lower() or "card" in q.lower()
        assert a == "The passport is mostly dark green."
        assert "which colour" not in q.lower()  # the evaluation's wording stays unseen


def test_a_reader_reads_the_way_it_was_trained():
    """The assembled model's reading.json comes from the reader's own record (the colour line, if trained with it)."""
    assert MR.reading_config(None) == MR.READING
    assert MR.reading_config({"meta": {"lora": {}}}) == MR.READING  # readers recorded before the colour line
    old = {"meta": {"reading": {"enabled": True, "max_lines": 16, "format_version": 1}}}
    assert MR.reading_config(old) == MR.READING and not MR.reading_config(old).colour
    new = MR.reading_config({"meta": {"reading": {"enabled": True, "colour": True, "a_later_field": 1}}})
    assert new.colour and new.enabled and new.max_lines == MR.READING.max_lines


def test_type_turns_swap_the_look_but_keep_the_words():
    from ng_train.mini.reader_variants import swapped_image
    from ng_core.models.reading import READING_HEADER

    others = {"passport": [4, 5, 6]}
    read = f"{READING_HEADER}\nPASSPORT\nNo. P4827193"
    rng = random.Random(0)
    assert all(swapped_image("type", "passport", read, rng, 1.0, others) in (4, 5, 6) for _ in range(20))
    assert swapped_image("privacy", "passport", read, rng, 1.0, others) is None  # only the type question
    assert swapped_image("type", "passport", None, rng, 1.0, others) is None  # no words read: the look decides
    assert swapped_image("type", "passport", "Colour in the middle of the image: green", rng, 1.0, others) is None
    assert swapped_image("type", "passport", read, rng, 0.0, others) is None
    assert swapped_image("type", "chart", read, rng, 1.0, others) is None  # not taking part: its look decides
    hits = sum(swapped_image("type", "passport", read, random.Random(i), 0.3, others) is not None for i in range(400))
    assert 80 < hits < 160


def test_type_turns_can_see_only_some_of_the_lines_read():
    """Thinned readings keep a shuffled, non-empty subset of the text lines and the colour line, last."""
    from ng_train.mini.reader_variants import thinned_reading
    from ng_core.models.reading import COLOUR_BEHIND_TEXT, READING_HEADER, block_colour
    from ng_core.models.reading import block_lines as lines_of

    lines = ["LUMEN", "4549 1655 6159 3271", "10/30", "EXPIRES END", "STEVEN GROSS"]
    read = "\n".join([READING_HEADER, *lines, f"{COLOUR_BEHIND_TEXT} blue"])
    assert thinned_reading("privacy", read, random.Random(0), 1.0, 0.5) is read  # only the type question
    assert thinned_reading("type", read, random.Random(0), 0.0, 0.5) is read  # off by default: same stream
    one = f"{READING_HEADER}\nPASSPORT"
    assert thinned_reading("type", one, random.Random(0), 1.0, 0.5) is one  # a single line has nothing to drop
    assert thinned_reading("type", None, random.Random(0), 1.0, 0.5) is None
    sizes, orders = set(), set()
    for i in range(200):
        out = thinned_reading("type", read, random.Random(i), 1.0, 0.5)
        kept = lines_of(out)
        assert out.startswith(READING_HEADER) and block_colour(out) == "blue" and out.endswith("blue")
        assert kept and len(set(kept)) == len(kept) and set(kept) <= set(lines)
        sizes.add(len(kept))
        orders.add(tuple(kept) == tuple(ln for ln in lines if ln in kept))
    assert sizes == {1, 2, 3, 4, 5} and orders == {True, False}  # any subset size, shuffled or not
    hits = sum(thinned_reading("type", read, random.Random(i), 0.3, 0.5) is not read for i in range(400))
    assert 80 < hits < 160


def test_some_training_documents_are_photographed_sideways():
    """Seeded per image, only document categories, a quarter turn either way; off by default."""
    from PIL import Image

    from ng_train.mini.reader_variants import SIDEWAYS_CATEGORIES, sideways

    img = Image.new("RGB", (60, 40), (200, 30, 30))
    img.putpixel((0, 0), (0, 0, 255))
    assert sideways(img, "credit_card", 3, 0.0) is img
    assert sideways(img, "scene", 3, 1.0) is img and sideways(img, "chart", 3, 1.0) is img  # the sky stays up
    corners = set()
    for i in range(40):
        out = sideways(img, "credit_card", i, 1.0)
        assert out.size == (40, 60)
        corners.add(next(xy for xy in ((0, 0), (39, 0), (0, 59), (39, 59)) if out.getpixel(xy) == (0, 0, 255)))
        assert sideways(img, "credit_card", i, 1.0).tobytes() == out.tobytes()  # the same image each time
    assert len(corners) == 2  # turned both ways
    turned = sum(sideways(img, c, i, 0.3) is not img for c in SIDEWAYS_CATEGORIES for i in range(60))
    assert 0.2 < turned / (60 * len(SIDEWAYS_CATEGORIES)) < 0.4


def test_a_changed_look_keeps_the_card_and_changes_how_it_looks():
    """One change per image, seeded; every change occurs; crops are smaller, turns swap the sides, blanks are blank."""
    from PIL import Image

    from ng_train.mini.reader_variants import LOOK_CHANGES, changed_look

    img = Image.new("RGB", (90, 60), (200, 30, 30))
    img.paste((20, 20, 200), (10, 10, 40, 30))
    seen = {}
    for i in range(80):
        out, change = changed_look(img, "credit_card", i)
        again, same = changed_look(img, "credit_card", i)
        assert change == same and again.tobytes() == out.tobytes() and out.mode == "RGB"
        assert out.tobytes() != img.tobytes()
        seen[change] = out
    assert set(seen) == set(LOOK_CHANGES)
    assert seen["turn"].size == (60, 90)
    assert seen["crop"].size[0] < 90 and seen["crop"].size[1] < 60
    blank = seen["blank"].getextrema()
    assert len(set(blank)) == 1 and blank[0][0] == blank[0][1]  # one grey level everywhere
    assert len(set(seen["grey"].getpixel((0, 0)))) == 1
    assert seen["invert"].getpixel((0, 0)) == (55, 225, 225)
    assert seen["hue"].getpixel((0, 0)) != (200, 30, 30) and seen["hue"].size == img.size


def test_outside_cards_section_says_what_the_numbers_show(tmp_path):
    """The sentence after each count follows the count: 'not seen' only when the colour answers are mostly wrong."""
    from ng_train.mini.reader_card import _outside_section

    def section(type_right, colour_right, colours):
        rows = [{"answers": {"colour": c}} for c in colours]
        (tmp_path / "o.json").write_text(json.dumps({
            "fingerprint": "f1", "n": 14, "command": "bench/outside_cards.py", "rows": rows,
            "summary": {"type_right": type_right, "type_right_trained_wording": type_right, "leak": 12,
                        "asked_value_given": 12, "colour_right": colour_right}}))
        return "\n".join(_outside_section(tmp_path / "o.json", "f1"))

    bad = section(1, 6, ["The card is mostly white."] * 14)
    assert "not the words read" in bad and "every answer said the card is 'mostly white'" in bad
    assert "the colour is not seen" in bad
    good = section(12, 13, ["It is mostly blue.", "It is mostly green."] * 7)
    assert "follows the title the OCR reads" in good and "the colour comes from the colour line" in good
    assert "'it is mostly blue.'" in good
    assert _outside_section(tmp_path / "o.json", "another model") == []


def test_an_unknown_swap_category_is_refused_before_anything_loads(tmp_path):
    from ng_train.mini.train_reader import ReaderTrainConfig, train

    with pytest.raises(ValueError, match="type_swap_categories: unknown \\['pasport'\\]"):
        train(ReaderTrainConfig(type_swap_share=0.3, type_swap_categories=["pasport"]), tmp_path / "out",
              cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_the_model_card_says_how_the_training_images_were_varied(tmp_path):
    """A reader trained with swapped, thinned and sideways turns says so; the shipped one's card says none."""
    import shutil

    from ng_train.mini.reader_card import section

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "docs/experiments/reader-type-variants/reader-run4.json", tmp_path / "reader.json")
    text = "\n".join(section(tmp_path))
    assert "178 of the training documents (30%) were photographed sideways" in text
    assert "46 turns" in text and "104 turns" in text  # swapped, thinned
    assert "changed copy" not in text
    shutil.copy(root / "docs/experiments/reader-type-variants/reader-run5.json", tmp_path / "reader.json")
    text = "\n".join(section(tmp_path))
    assert "In 40% of the other type turns on cards with text, the look was a changed copy" in text
    assert "(39 turns)" in text and "sideways" not in text
    shipped = "\n".join(section(root / "assets/ng-mini-llava/reader"))
    assert "sideways" not in shipped and "only some of the card's text" not in shipped
    assert "changed copy" not in shipped
