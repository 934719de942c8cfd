"""The dashboard's core API (ng_core.studio) on the tiny random model: sessions, gates, edits, jobs, runs."""
from __future__ import annotations

import io
import threading
import zipfile

import pytest
import torch
from PIL import Image

from helpers import param_hash
from ng_core.errors import BundleError, InputImageError, NGError
from ng_core.models.hooks import live_hook_count, module_hook_count
from ng_core.method.interventions import Delta, Gate
from ng_core.data.records import ImageRecord
from ng_core.studio import (CURRENT, Job, StudioSession, guess_subject, neuron_view, record_from_inputs,
                            run_units)

PROMPT = "What is the number of the passport?"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def session(tiny, image_dir, tmp_path):
    _baseline(tiny)
    s = StudioSession(tiny, runs_dir=tmp_path / "runs", max_new_tokens=12)
    s.set_image(image_dir / "img0.png", name="img0", private=False)
    s.set_prompt(PROMPT)
    return s


def _no_leftover_hooks(tiny) -> bool:
    """Nothing of ours is attached: the core's count is 0 and the model has only its own hooks."""
    return live_hook_count() == 0 and module_hook_count(tiny.model) == _baseline(tiny)


_BASE = {}


def _baseline(tiny) -> int:
    if id(tiny) not in _BASE:
        assert live_hook_count() == 0
        tiny.encode_image_uncached(Image.new("RGB", (30, 30)))  # transformers adds its own hooks on first use
        _BASE[id(tiny)] = module_hook_count(tiny.model)  # transformers' own hooks
    return _BASE[id(tiny)]


def _strong_gate(tiny, where="all"):
    return Gate(1, torch.arange(tiny.hidden_size), 0.0, where, "residual", "all off")


def _random_delta(tiny, layer=2, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = tiny.down_proj(layer).weight
    return Delta(layer, torch.randn(W.shape, generator=g) * scale, label="random")


def test_ask_and_interventions(session, tiny):
    base = session.ask(interventions=False)
    assert base.text and base.interventions == []
    assert session.subject == "passport"
    session.set_gates([_strong_gate(tiny)])
    gated = session.ask()
    assert gated.text != base.text
    assert gated.interventions == ["all off: layer 1, 64 residual neurons, x0.00, at every position"]
    assert session.ask(interventions=False).text == base.text
    assert session.active_interventions() == gated.interventions
    b, g = session.compare()
    assert (b.text, g.text) == (base.text, gated.text)
    session.clear_gates()
    assert session.ask().text == base.text
    assert _no_leftover_hooks(tiny)


def test_streaming_and_verdict(session):
    seen = []
    ans = session.ask(on_token=seen.append)
    assert seen and seen[-1].strip() == ans.text
    pytest.importorskip("ng_core.evaluation.judge")
    assert ans.verdict is not None and ans.refused in (True, False)


def test_subject_gate_needs_subject(session, tiny):
    session.set_gates([_strong_gate(tiny, where="subject")])
    ans = session.ask(prompt="Describe the picture.")
    assert any("no subject" in n for n in ans.notes)
    assert ans.text == session.ask(prompt="Describe the picture.", interventions=False).text


def test_base_answer_is_memoised(session):
    calls = []
    a1 = session.base_answer(on_token=calls.append)
    n = len(calls)
    a2 = session.base_answer(on_token=calls.append)
    assert a1 is a2 and len(calls) == n + 1  # the cached text is replayed once, not regenerated


def test_two_sessions_do_not_share_edits_or_gates(tiny, image_dir, tmp_path):
    a = StudioSession(tiny, runs_dir=tmp_path, max_new_tokens=12)
    b = StudioSession(tiny, runs_dir=tmp_path, max_new_tokens=12)
    for s in (a, b):
        s.set_image(image_dir / "img1.png", private=False)
        s.set_prompt(PROMPT)
    before = b.ask().text
    h0 = param_hash(tiny.model)
    a.apply_edit([_random_delta(tiny)])
    a.set_gates([_strong_gate(tiny)])
    assert a.ask().text != before
    assert b.ask().text == before
    assert b.active_interventions() == []
    assert param_hash(tiny.model) == h0
    # concurrently: the adapter's lock serialises the calls, each with its own hooks
    out = {}
    ts = [threading.Thread(target=lambda k=k, s=s: out.__setitem__(k, s.ask().text)) for k, s in (("a", a), ("b", b))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert out["b"] == before and out["a"] != before
    assert _no_leftover_hooks(tiny)


def test_revert_restores_base_exactly(session, tiny):
    base = session.ask(interventions=False).text
    session.apply_edit([_random_delta(tiny)])
    assert session.has_edit and session.edit_fingerprint() != "base"
    assert session.ask().text != base
    assert set(session.weight_change()) == {2}
    session.revert()
    assert session.ask().text == base and session.edit_fingerprint() == "base"
    assert [e["event"] for e in session.ledger][-2:] == ["edit", "revert"]


def test_edit_job_applies_on_success(session, records, tiny):
    p = session.preset
    base = session.ask(interventions=False).text
    job = session.start_edit({"passport": records[:2]}, p.layer, p.mask, p.edit)
    assert job.wait(120)
    assert job.status == "done", job.error_message()
    assert session.has_edit and session.edit_run is job.result
    assert job.metric_history() and "loss" in job.metric_history()[-1]
    assert "edit (neural_gate, subject_position)" in session.active_interventions()[0]
    assert session.ask(interventions=False).text == base
    assert _no_leftover_hooks(tiny)


def test_cancel_leaves_session_unchanged(session, records, tiny):
    from dataclasses import replace

    p = session.preset
    keep = [_random_delta(tiny, seed=3)]
    session.apply_edit(keep, label="kept")
    before = session.ask().text
    job = session.start_edit({"passport": records}, p.layer, replace(p.mask, steps=400), p.edit)
    for _ in range(2000):
        if job.last is not None or job.done:
            break
        threading.Event().wait(0.005)
    job.cancel()
    assert job.wait(60)
    assert job.status == "cancelled" and "cancelled" in job.error_message()
    assert session.deltas == keep and session.edit_run is None
    assert session.ask().text == before
    assert _no_leftover_hooks(tiny)
    assert not session.busy


def test_failed_job_leaves_state_and_no_hooks(session, tiny, image_dir):
    bad = ImageRecord(image=image_dir / "img0.png", category="passport", subject="passport",
                      rewrite_prompt="What is the number of the {} here?", target="I cannot",
                      paraphrases=("What is the number here?",), neighbours=("What colour is it?",))
    for start in (lambda: session.start_localize({"passport": [bad]}, [1]),
                  lambda: session.start_edit({"passport": [bad]}, session.preset.layer, session.preset.mask,
                                             session.preset.edit)):
        job = start()
        assert job.wait(60)
        assert job.status == "failed" and "subject" in job.error_message()
        assert session.localization is None and not session.has_edit
        assert _no_leftover_hooks(tiny)


def test_error_during_generation_removes_hooks(session, tiny):
    session.set_gates([_strong_gate(tiny)])
    session.apply_edit([_random_delta(tiny)])

    def boom(text):
        raise RuntimeError("streaming client went away")

    with pytest.raises(RuntimeError):
        session.ask(on_token=boom)
    assert _no_leftover_hooks(tiny)


def test_one_job_at_a_time(session, records):
    gate = threading.Event()
    job = session._start("localize", lambda prog: gate.wait(10))
    with pytest.raises(NGError, match="still running"):
        session.start_localize({"passport": records}, [1])
    gate.set()
    job.wait(10)
    assert job.status == "done" and not session.busy


def test_job_reports_progress_and_errors():
    def work(prog):
        for i in range(3):
            prog.update("x", i + 1, 3, f"step {i}", loss=1.0 / (i + 1))
        return 42

    j = Job("x", work).start()
    assert j.wait(10) and j.result == 42 and j.fraction == 1.0
    assert [h["loss"] for h in j.metric_history()] == [1.0, 0.5, 1.0 / 3]
    j2 = Job("x", lambda prog: 1 / 0).start()
    j2.wait(10)
    assert j2.status == "failed" and "ZeroDivisionError" in j2.error_message() and j2.traceback


def test_localize_and_reselect_without_rerun(session, records, tiny):
    job = session.start_localize({"passport": records}, [1, 2], session.preset.mask)
    assert job.wait(120) and job.status == "done", job.error_message()
    run = session.localization
    assert run is job.result and run_units(run) == ["residual"]
    v0 = neuron_view(run, privacy_value=0.0, threshold=0.3)
    assert v0.score.shape == (2, tiny.hidden_size) and v0.layers == [1, 2]
    loose = neuron_view(run, privacy_value=1.0, threshold=0.0)
    assert loose.selected.sum() >= v0.selected.sum()
    top = neuron_view(run, topk=0.25, threshold=0.0)
    assert all(n >= 16 for n in top.counts().values())
    rows = top.rows(limit=5)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert set(rows[0]) == {"layer", "neuron", "score", "frequency", "selected"}
    sel = top.selection()
    gates = session.make_gates(sel, 0.0, "subject")
    assert [g.layer for g in gates] == [1, 2]


def test_scores_jobs_and_views(session, records, tiny):
    from ng_core.method.scores import ScoreConfig

    for method in ("contrast", "gradxact"):
        job = session.start_scores(records, ScoreConfig(method=method, layers=(0, 1, 2, 3)))
        assert job.wait(120) and job.status == "done", job.error_message()
        run = session.localization
        assert run_units(run) == ["residual", "ffn"]
        v = neuron_view(run, "ffn", top_per_layer=5, threshold=0.0)
        assert v.score.shape == (4, tiny.ffn_size)
        assert all(c <= 5 for c in v.counts().values())
        assert (v.freq is None) == (method == "contrast")


def test_neuron_activations(session, records, tiny):
    acts = session.neuron_activations(records, 2)
    n = len(acts["pairs"])
    assert n == 6 and acts["sensitive"].shape == (n, tiny.hidden_size) == acts["benign"].shape


def test_runs_save_load_delete_archive(session, records, tiny, tmp_path):
    p = session.preset
    job = session.start_edit({"passport": records[:1]}, p.layer, p.mask, p.edit)
    assert job.wait(120) and job.status == "done", job.error_message()
    path = session.save_edit("my-edit")
    with pytest.raises(BundleError, match="already exists"):
        session.save_edit("my-edit")
    with pytest.raises(BundleError, match="invalid run name"):
        session.run_path("../escape")
    assert [r["name"] for r in session.runs()] == ["my-edit"]
    edited = session.ask().text
    session.revert()
    other = StudioSession(tiny, runs_dir=tmp_path / "runs")
    other.set_image(session.image, private=True)
    run = other.load_run("my-edit")
    assert run.kind == "edit" and other.has_edit and other.localization is run
    assert other.ask(prompt=PROMPT, max_new_tokens=12).text == edited
    z = zipfile.ZipFile(io.BytesIO(other.run_archive("my-edit")))
    assert "my-edit/run.json" in z.namelist()
    # a shared runs folder: only the session that saved a run deletes it
    assert other.can_delete_run("my-edit")[0] is False
    with pytest.raises(BundleError, match="not saved by this browser session"):
        other.delete_run("my-edit")
    assert path.exists()
    assert StudioSession(tiny, runs_dir=tmp_path / "runs", delete_any_run=True).can_delete_run("my-edit")[0]
    session.delete_run("my-edit")
    assert not path.exists() and other.runs() == []
    with pytest.raises(BundleError):
        session.delete_run("my-edit")


def test_private_upload_stays_out_of_shared_cache(tiny):
    s = StudioSession(tiny)
    buf = io.BytesIO()
    Image.new("RGB", (50, 40), (1, 2, 3)).save(buf, format="PNG")
    n = len(tiny.caches.features)
    s.set_image(buf.getvalue(), name="upload.png", private=True)
    assert s.features is not None and len(tiny.caches.features) == n
    with pytest.raises(InputImageError, match="not a readable image"):
        s.set_image(b"definitely not an image", name="x.png")
    assert s.image_name == "upload.png"  # a bad upload leaves the previous image
    s.clear_image()
    assert s.image is None and s.features is None


def test_text_only_and_empty_prompt(tiny):
    s = StudioSession(tiny, max_new_tokens=8)
    assert s.ask(None, "Describe a passport.").text is not None
    with pytest.raises(NGError, match="prompt"):
        s.ask(CURRENT, "   ")


def test_record_from_inputs_and_subject_guess():
    img = Image.new("RGB", (30, 30))
    r = record_from_inputs(img, "What is the Passport number here?", "passport")
    assert r.rewrite_prompt == "What is the {} number here?" and r.subject == "Passport"
    assert r.paraphrases == ("What is the Passport number here?",) and "Passport" in r.neighbours[0]
    with pytest.raises(NGError, match="does not contain"):
        record_from_inputs(img, "What is this?", "passport")
    assert guess_subject("Read the phone number on the screen") == "phone number"
    assert guess_subject("Describe the sky") is None


def test_gate_validation(session, tiny):
    with pytest.raises(NGError, match="out of range"):
        session.set_gates([Gate(1, torch.tensor([tiny.hidden_size]), 0.0)])
    with pytest.raises(ValueError, match="out of range"):
        session.set_gates([Gate(99, torch.tensor([0]), 0.0)])
    assert session.gates == []


def test_answers_are_memoised_per_state(session, tiny, monkeypatch):
    calls = []
    real = tiny.generate

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(tiny, "generate", counting)
    g1 = [_strong_gate(tiny)]
    g2 = [Gate(1, torch.arange(8), 0.5, "all", "residual", "some")]
    session.set_gates(g1)
    a1 = session.compare()[1]
    session.set_gates(g2)
    session.compare()
    n = len(calls)
    session.set_gates(g1)  # back to a state seen before: no generation
    assert session.compare()[1] is a1 and len(calls) == n
    session.apply_edit([_random_delta(tiny)])  # a new edit is a new state
    session.compare()
    assert len(calls) == n + 1
    assert session.ask(memo=False).text == session.ask().text and len(calls) == n + 2
