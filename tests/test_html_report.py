"""The shareable HTML report (ng_core.studio.html_report): one self-contained file, from a session or a run bundle."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from ng_core.cli.main import main
from ng_core.studio.html_report import answer_entry, render_html, run_story, session_story
from ng_core.evaluation.leaks import outcome_counts
from ng_core.studio import StudioSession

pytestmark = pytest.mark.usefixtures("one_thread")
SECRET = "P4827193"


def _offline(doc: str) -> None:
    """Nothing in the document is loaded from the network."""
    assert not re.search(r"<script[^>]*\bsrc\s*=", doc, re.I)
    assert not re.search(r"<link[^>]*href\s*=\s*['\"]?(https?:)?//", doc, re.I)
    assert not re.search(r"<(img|iframe)[^>]*src\s*=\s*['\"]?(https?:)?//", doc, re.I)
    assert not re.search(r"@import", doc)
    assert "Plotly.newPlot" in doc and "window.Plotly" in doc or "Plotly=" in doc or "plotly.js" in doc


@pytest.fixture(scope="module")
def pair_session(tiny, image_dir, tmp_path_factory):
    from conftest import make_records

    s = StudioSession(tiny, runs_dir=tmp_path_factory.mktemp("runs"), max_new_tokens=6)
    s.set_image(image_dir / "img0.png", private=False)
    s.set_prompt("What is the number of the passport?")
    p = s.preset
    job = s.start_edit_with_control({"passport": make_records(image_dir)[:2]}, p.layer,
                                    replace(p.mask, topk=0.2), replace(p.edit, lr=0.05))
    assert job.wait(120) and job.status == "done", job.error_message()
    return s


def test_session_report_is_self_contained_with_highlights(pair_session):
    s = pair_session
    before = s.base_answer()
    after = s.ask(interventions="edit")
    rows = [answer_entry("Before", "The number is P 482-7193.", [SECRET]), answer_entry("After", after, [SECRET])]
    counts = {"before": outcome_counts([(r["text"], r["refused"], [SECRET]) for r in rows[:1]])}
    story = session_story(s, sections=[{"title": "The card", "question": s.prompt, "rows": rows},
                                       {"title": "Held-out batch", "questions": ["q1"],
                                        "rows": [[answer_entry("unedited", before), answer_entry("learned", after)]]}],
                          counts=counts)
    doc = render_html(story)
    _offline(doc)
    assert "<mark" in doc and "P 482-7193</mark>" in doc and "leaked P4827193" in doc
    assert "1 leaked / 0 refused / 1 answered" in doc
    assert s.adapter.fingerprint() in doc and "torch" in doc
    assert "random-gate control" in doc and "learned gate" in doc and "edit (neural_gate" in doc
    assert doc.count("Plotly.newPlot") >= 4


def test_report_html_cli_for_a_run_bundle(pair_session, tmp_path):
    path = pair_session.save_edit("demo-edit")
    out = tmp_path / "report.html"
    assert main(["report-html", str(path), "--out", str(out)]) == 0
    doc = out.read_text(encoding="utf-8")
    _offline(doc)
    assert pair_session.adapter.fingerprint() in doc and "Where the edit went" in doc
    assert "holds no answers" in doc
    story = run_story(path)
    assert story["summary"].startswith("neural_gate edit on L")
    assert main(["report-html", str(tmp_path / "missing"), "--out", str(out)]) == 1
