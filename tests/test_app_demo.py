"""AppTest: the guided demo (first page) walked end to end on tiny-random, and the exported report."""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from app_testing import finish_job, new_app, one_thread, plotly_charts, texts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_guided_demo_end_to_end(tmp_path):
    at = new_app(tmp_path / "runs", page=None)
    assert not at.exception, at.exception
    assert at.title[0].value == "Guided demo"
    s = at.session_state["studio"]
    assert not s.gates and not s.deltas  # nothing is switched on by opening the demo
    # 1. a sample card: its question and subject, the true values
    at.button(key="demo_use_sample").click().run()
    assert s.image is not None and s.secrets and s.subject
    assert "true private values on this card" in texts(at)
    # 2. the unedited answer
    at.button(key="demo_ask").click().run()
    assert "**The unedited model**" in texts(at)
    # 3. localize at the demo layer: heatmap and top neurons
    at.button(key="demo_localize").click().run()
    at = finish_job(at)
    assert not at.exception, at.exception
    assert "privacy neurons found at L2" in texts(at) and plotly_charts(at)
    # 4. gates: off until clicked, then on, then off again
    assert not s.gates
    at.button(key="demo_gates").click().run()
    assert s.gates and "Privacy neurons switched off" in texts(at)
    # 5. the edit with its random-gate control (the gates are dropped first)
    at.button(key="demo_edit").click().run()
    at = finish_job(at)
    assert not at.exception, at.exception
    assert s.edit_pair is not None and not s.gates
    # 6. before / after on held-out cards, counts on every side
    at.button(key="demo_batch_run").click().run()
    t = texts(at)
    assert t.count("Leaked / refused / answered") == 3
    # its unedited part was done ahead by the page's preparing job, and kept beside the held-out cards
    world = Path(os.environ.get("NG_WORLD_DIR") or f"{os.environ['NG_DATA_DIR']}-world") / at.session_state["demo_cat"]
    assert list(world.glob("unedited-*.json"))
    assert list(world.glob("readings-*.json")) or not s.model.reads
    assert len(re.findall(r"leaked / \d+ refused / \d+ answered", t)) >= 3
    # 7. where the edit went: one ΔW chart per side
    assert len(plotly_charts(at)) >= 3
    # the report: one self-contained HTML file
    at.button(key="demo_report_build").click().run()
    doc = at.session_state["demo_report"]
    assert "<script src" not in doc and "Plotly.newPlot" in doc and "Held-out cards" in doc
    assert html.escape(s.prompt) in doc
    # saving keeps the answers with the run (for `ng report-html`)
    at.button(key="demo_save").click().run()
    assert not at.exception, at.exception
    assert s.edit_run.path is not None and "answers" in s.edit_run.metrics


def test_subject_by_clicking_a_word_of_the_question(tmp_path):
    at = new_app(tmp_path / "runs")
    at.text_area(key="w_prompt").input("What colour is the card?").run()
    s = at.session_state["studio"]
    assert not s.subject and any("No subject" in w.value for w in at.warning)
    pills = at.pills(key="w_subject_pick")
    assert pills.options[:2] == ["colour", "card"]
    pills.set_value("card").run()
    assert at.text_input(key="w_subject").value == "card" and s.subject == "card"
    assert not any("No subject" in w.value for w in at.warning)


def test_edit_with_the_current_image_and_more_than_two_images(tmp_path):
    at = new_app(tmp_path / "runs")
    at.button(key="use_passport").click().run()
    at.switch_page("app/page_edit.py").run()
    assert at.number_input(key="w_edit_n").max > 2  # more than 2 sample images per category
    at.selectbox(key="w_edit_method").set_value("ft").run()
    at.number_input(key="w_edit_n").set_value(3).run()
    at.checkbox(key="w_edit_own").check().run()
    at.button(key="run_edit").click().run()
    at = finish_job(at)
    s = at.session_state["studio"]
    assert not at.exception and s.job.status == "done", s.job.error_message()
    assert s.edit_run.metrics["diagnostics"]["passport"]["n_edits"] == 3 * 2 + 1  # 3 samples x 2 questions + yours


def test_a_running_edit_shows_its_progress_on_the_demo_page(tmp_path, monkeypatch):
    """While the demo's edit runs, the page reaches step 5 and draws the edit's progress panel: that panel's
    fragment is what notices the end of the job in a browser and reruns the page. (The page used to stop at
    step 3 whenever any job ran, so in Chromium the edit never showed as finished.)"""
    import threading

    from ng_core.method import pipeline
    at = new_app(tmp_path / "runs", page=None)
    s = at.session_state["studio"]
    at.button(key="demo_use_sample").click().run()
    at.button(key="demo_ask").click().run()
    at.button(key="demo_localize").click().run()
    at = finish_job(at)
    at.button(key="demo_gates").click().run()
    assert s.gates
    release, real = threading.Event(), pipeline.edit_with_control

    def held(*a, **kw):
        assert release.wait(120)
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "edit_with_control", held)
    try:
        at.button(key="demo_edit").click().run()
        assert s.busy and s.job.kind == "edit" and not at.exception, at.exception
        labels = [st.label for st in at.status]
        assert any(l.startswith("Editing: running") for l in labels), labels
        assert at.button(key="demo_gates").disabled  # no gate toggles (and no answers) while the edit trains
    finally:
        release.set()
    at = finish_job(at)
    assert not at.exception, at.exception
    assert s.job.status == "done" and s.edit_pair is not None
    assert "Editing finished in" in texts(at)
