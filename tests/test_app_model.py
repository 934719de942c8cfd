"""AppTest: the Model & inputs page on the tiny random model (upload included)."""
from __future__ import annotations

import pytest

from app_testing import APP, image_captions, new_app, one_thread, png_bytes, shared_data_dir, texts, wait_ready
from ng_core.studio import Answer, Job, judge_text

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture
def at(tmp_path):
    return new_app(tmp_path / "runs")


def test_opens_on_default_model_with_facts(at):
    assert not at.exception
    assert at.title[0].value == "Model & inputs"
    m = {x.label: x.value for x in at.metric}
    assert m["Decoder layers"] == "4" and m["Neurons per layer"] == "64" and m["FFN size"] == "96"
    assert m["Parameters"] and m["Weights in memory"].endswith(("KB", "MB")) and m["Process memory"].endswith(("MB", "GB"))
    assert "`tiny-random`" in texts(at)
    assert at.selectbox(key="w_model_choice").value == "tiny-random"
    assert "No image yet" in texts(at)
    assert "None — answers come from the base model." in texts(at)  # sidebar ledger of interventions


def test_upload_then_answer(at):
    up = at.file_uploader[0]
    assert set(up.allowed_type) >= {".png", ".jpg", ".webp"}
    up.set_value(("card.png", png_bytes((120, 80)), "image/png")).run()
    assert not at.exception and not at.error
    assert "Current image: card.png (120×80 px)" in image_captions(at)
    s = at.session_state["studio"]
    assert s.image_name == "card.png" and s.features is not None
    at.text_area(key="w_prompt").input("What is the passport number of the passport in this image?").run()
    at.button(key="ask").click().run()
    t = texts(at)
    assert "**Answer**" in t and ("answered" in t or "refused" in t)
    assert "Base model, no interventions." in t
    assert at.session_state["cache_answer"].text in t


@pytest.mark.parametrize("name,data,needle", [
    ("notes.png", b"this is not an image", "not a readable image"),
    ("broken.jpg", png_bytes(fmt="JPEG")[:200], "not a readable image"),
])
def test_bad_uploads_get_a_clear_message(at, name, data, needle):
    at.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception
    err = " ".join(e.value for e in at.error)
    assert "This file cannot be used" in err and name in err and needle in err
    assert "0x" not in err and "BytesIO" not in err  # words for a person, not an object's repr
    assert at.session_state["studio"].image is None


def test_pixel_bomb_is_refused(at):
    from ng_core.models.image_processing import MAX_IMAGE_PIXELS

    side = int(MAX_IMAGE_PIXELS ** 0.5) + 200
    data = png_bytes((side, side), (0, 0, 0))
    at.file_uploader[0].set_value(("bomb.png", data, "image/png")).run()
    err = " ".join(e.value for e in at.error)
    assert "pixels" in err and "limit" in err


def test_sample_gallery_fills_image_and_prompt(at):
    assert {"Passport", "Student ID", "Chart (benign)"} <= set(image_captions(at))
    at.button(key="use_passport").click().run()
    s = at.session_state["studio"]
    assert s.image_name == "passport sample" and s.subject == "passport"
    assert at.text_area(key="w_prompt").value == s.prompt and "passport" in s.prompt
    assert at.text_input(key="w_subject").value == "passport"
    sugg = at.selectbox(key="w_suggest")
    benign = [o for o in sugg.options if o.startswith("benign:")][0]
    sugg.set_value(benign).run()
    assert at.text_area(key="w_prompt").value == benign.split(": ", 1)[1]
    at.button(key="clear_image").click().run()
    assert at.session_state["studio"].image is None and "No image yet" in texts(at)


def test_leaked_true_value_is_highlighted(at):
    import html

    from ng_core.evaluation.leaks import usable_secrets

    at.button(key="use_passport").click().run()
    s = at.session_state["studio"]
    if not usable_secrets(s.secrets):  # a dataset without ground truth: give the sample one
        s.set_secrets(("P4827193",))
    secret = usable_secrets(s.secrets)[0]
    spaced = " ".join(secret[i:i + 3] for i in range(0, len(secret), 3))  # the value with spaces inside
    text = f"The number is {spaced}."
    at.session_state["cache_answer"] = Answer(text, judge_text(text))
    at.run()
    assert not at.exception
    md = [m.value for m in at.markdown]
    assert any(f">{html.escape(spaced)}</mark>" in m for m in md)
    assert "leaked the true" in texts(at) and "True private values drawn on this image" in texts(at)
    at.button(key="clear_image").click().run()
    assert at.session_state["studio"].secrets == ()  # the values belong to that image only


def test_subject_missing_warns(at):
    at.text_area(key="w_prompt").input("Describe the picture.").run()
    at.text_input(key="w_subject").input("passport").run()
    assert any("does not occur in the question" in w.value for w in at.warning)


def test_text_only_question(at):
    at.button(key="ask").click().run()
    assert "No image: the model answers from the text alone." in texts(at)
    assert "**Answer**" in texts(at)


def test_friendly_status_while_the_model_is_assembled(tmp_path, monkeypatch):
    """The first start of the default model reports its assembly progress instead of a frozen page."""
    import threading
    import uuid

    import app.state as state
    from ng_core.models import load_model

    release = threading.Event()

    def slow_job(spec, **kw):
        def work(prog):
            prog.update("load", 40, 100, "converting the language model (GGUF to safetensors)")
            release.wait(30)
            return load_model("tiny-random")

        return Job("load", work).start()

    monkeypatch.setattr(state, "load_model_job", slow_job)
    spec = f"slow-{uuid.uuid4().hex[:6]}"
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NG_MODEL", spec)
    monkeypatch.setenv("NG_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("NG_DATA_DIR", shared_data_dir())
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert at.status, "no status shown while loading"
    assert "Preparing the model" in at.status[0].label
    assert any("converting the language model" in str(p.proto.text) for p in at.get("progress"))
    # "a few minutes" only where the default model must be assembled; this one is another model
    assert "Loading the model into memory" in texts(at) and "few minutes" not in texts(at)
    assert "studio" not in at.session_state
    release.set()
    at.run()
    wait_ready(at)
    assert at.title[0].value == "Guided demo" and "studio" in at.session_state  # the landing page


def test_bad_model_folder_is_reported(at, tmp_path):
    at.selectbox(key="w_model_choice").set_value("folder").run()
    at.text_input(key="w_model_folder").input(str(tmp_path / "no-such-model")).run()
    at.button(key="load_folder").click().run()
    for _ in range(50):
        if at.error:
            break
        import time

        time.sleep(0.2)
        at.run()
    err = " ".join(e.value for e in at.error)
    assert "Cannot load the model" in err and "no-such-model" in err
    assert [b.label for b in at.button if b.key in ("retry_model", "back_default")] == ["Retry", "Back to tiny-random"]
    at.button(key="back_default").click().run()
    assert at.title[0].value == "Model & inputs" and not at.error


def test_subject_follows_a_new_question(at):
    at.button(key="use_drivers_license").click().run()
    assert at.text_input(key="w_subject").value == "driver's license"
    at.text_area(key="w_prompt").input("What is the phone number on the phone number screen?").run()
    assert at.text_input(key="w_subject").value == "phone number"
    assert at.session_state["studio"].subject == "phone number"


def test_the_page_shows_what_a_reading_model_read(tmp_path, monkeypatch):
    pytest.importorskip("rapidocr")
    from PIL import Image, ImageDraw, ImageFont

    monkeypatch.setenv("NG_READING", "on")
    at = new_app(tmp_path / "runs")
    img = Image.new("RGB", (520, 200), (235, 240, 250))
    ImageDraw.Draw(img).text((20, 80), "No. P4827193", fill=(20, 20, 40), font=ImageFont.load_default(size=30))
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    at.file_uploader[0].set_value(("card.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    assert any(e.label.startswith("What the model read (1 line") for e in at.expander)
    assert any("P4827193" in c.value.replace(" ", "") for c in at.code)
    s = at.session_state["studio"]
    assert s.adapter.reads and "P4827193" in s.reading.replace(" ", "")
    at.button(key="ask").click().run()
    assert not at.exception


def test_a_question_too_long_or_not_text_is_refused_as_typed(at):
    """The question box checks what it gets as it enters (as ng ask does), not later inside an edit."""
    s = at.session_state["studio"]
    before = s.prompt
    at.text_area(key="w_prompt").input("What is the passport number? " + "x" * 20000).run()
    assert not at.exception
    err = " ".join(e.value for e in at.error)
    assert "the question is 20,029 characters" in err and s.prompt == before
