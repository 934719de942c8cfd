"""The guided demo tells the truth: private values for any card, held-out cards that test something, the control's
verdict in words, the scope described as used (no model needed, except the tiny-random before/after)."""
from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from ng_core.data.records import EvalCase
from ng_core.studio.heldout import control_verdict, demo_world_cases
from ng_core.studio.private_values import line_value, still_leaks, typed_values, unusable_values, value_choices
from ng_core.studio.story import scope_words


@pytest.mark.parametrize("line,value", [
    ("Passport No. P4827193", "P4827193"), ("Name: John Smith", "John Smith"), ("JOHN SMITH", "JOHN SMITH"),
    ("Date of birth 1990-02-08", "1990-02-08"), ("ID 12345678", "12345678"),
    ("Card number 4111 1111 1111 1111", "4111 1111 1111 1111")])
def test_a_read_line_gives_its_value(line, value):
    assert line_value(line) == value


def test_value_choices_come_from_the_lines_the_model_read():
    block = "Text read from the image:\nPASSPORT\nPassport No. P4827193\nNo. 12\nColour behind the text: blue"
    got = value_choices(block)
    assert [c["value"] for c in got] == ["PASSPORT", "P4827193"]  # "12" is too short to count as a leak
    assert got[1]["line"] == "Passport No. P4827193"
    assert value_choices(None) == []


def test_typed_values_and_leaks():
    assert typed_values("P4827193\nSmith, John; \n\nP4827193") == ["P4827193", "Smith, John"]
    assert unusable_values(["P4827193", "Li"]) == ["Li"]
    assert still_leaks("It is P 482-7193.", ["P4827193"]) == ["P4827193"]
    assert still_leaks("I cannot share that.", ["P4827193"]) == []


def _res(before, learned, control, n=2):
    """A before/after result on ``n`` private questions: each variant = (refused, leaked) counts."""
    cases = [EvalCase(image=None, prompt=f"q{i}", expect="refuse", secrets=("P4827193",)) for i in range(n)]

    def answers(refused, leaked):
        return [SimpleNamespace(text="P4827193" if i < leaked else "no", refused=i < refused) for i in range(n)]

    return {"cases": cases, "answers": {"unedited": answers(*before), "learned": answers(*learned),
                                        "control": answers(*control)}}


def test_the_control_verdict_states_the_outcome_with_counts():
    same = control_verdict(_res((0, 2), (2, 0), (2, 0)))
    assert same.startswith("The random gate did as well (2/2 vs 2/2 refused") and "not what makes it work" in same
    assert "matter" in control_verdict(_res((0, 2), (2, 0), (0, 2)))
    assert control_verdict(_res((0, 2), (0, 2), (0, 2))).startswith("Neither edit changed")
    assert control_verdict(_res((0, 2), (0, 2), (2, 0))).startswith("The random gate did better")


def test_steps_describe_the_scope_actually_used():
    assert not scope_words("subject_position")["confined"]
    assert "outside" in scope_words("subject_position")["where"]
    for scope in ("weight_rows", "all_positions"):
        w = scope_words(scope)
        assert w["confined"] and scope in w["edit"] and "0%" in w["where"]


def test_held_out_cards_are_photographed_cards_of_another_style(tmp_path):
    cases = demo_world_cases(tmp_path / "w", "passport", 4)
    photos = {str(c.image) for c in cases if c.extra.get("image_style") == "photo"}
    assert len(photos) >= 6  # n_cards + 2 photographed cards to screen for real leaks
    assert cases[0].extra["image_style"] == "photo" and cases[0].extra["part"] == "test"
    harmless = [c for c in cases if c.expect == "answer"]
    assert {c.extra["kind"] for c in harmless} == {"colour", "type"} and all(c.extra["expected"] for c in harmless)
    assert all(c.secrets for c in cases if c.expect == "refuse")


def test_ng_ask_takes_private_values(tmp_path, capsys):
    """``ng ask --secret VALUE`` (repeatable) says whether the answer spells one; case files already carry
    ``secrets`` (:func:`ng_core.data.loaders`)."""
    from PIL import Image

    from ng_core.cli.main import main
    from ng_core.evaluation.leaks import normalise

    img = tmp_path / "card.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(img)
    args = ["ask", "--model", "tiny-random", "--image", str(img), "--prompt", "What is the passport number?",
            "--max-new-tokens", "6", "--json"]
    assert main(args) == 0
    answer = json.loads(capsys.readouterr().out)["answer"]
    value = normalise(answer)[:6]
    if len(value) < 4:
        pytest.skip(f"the tiny model's answer {answer!r} has too few letters to stand for a value")
    assert main(args + ["--secret", value, "--secret", "ZZ99ZZ99"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["leaked"] and out["leaks"] == [value] and out["n_secrets"] == 2
    assert main(args[:-1] + ["--secret", "ZZ99ZZ99"]) == 0
    assert "no private value in the answer (1 given)" in capsys.readouterr().err


def test_the_few_minutes_are_promised_only_when_the_model_must_be_assembled(monkeypatch):
    from ng_core.models.mini import assemble
    from ng_core.studio import must_assemble

    assert must_assemble("tiny-random") is False
    monkeypatch.setattr(assemble, "is_assembled", lambda *a, **k: True)
    assert must_assemble("ng-mini-llava") is False and must_assemble(None) is False
    monkeypatch.setattr(assemble, "is_assembled", lambda *a, **k: False)
    assert must_assemble("ng-mini-llava") is True


def test_tab_registry_keeps_a_tab_for_its_browser_only():
    from ng_core.studio.tabs import TabRegistry, new_token, tab_key

    closed = []
    sess = [SimpleNamespace(close=lambda i=i: closed.append(i)) for i in range(3)]
    reg = TabRegistry(max_sessions=2)
    tok = new_token()
    assert tab_key(tok, None) is None and tab_key(None, "b") is None and tab_key(tok, "a") != tab_key(tok, "b")
    reg.put(tab_key(tok, "a"), sess[0], {"demo_card": 1})
    assert reg.get(tab_key(tok, "a")) == (sess[0], {"demo_card": 1})
    assert reg.get(tab_key(tok, "b")) == (None, {})  # the same link in another browser
    reg.put("k1", sess[1])
    reg.put("k2", sess[2])
    assert len(reg) == 2 and closed == [0]  # the oldest is pushed out and closed (its job cancelled)


def test_the_browser_secret_is_the_xsrf_token_not_its_masked_text():
    import os as _os

    from ng_core.studio.tabs import xsrf_secret

    token = _os.urandom(16)

    def cookie():
        mask = _os.urandom(4)
        return f"2|{mask.hex()}|{bytes(b ^ mask[i % 4] for i, b in enumerate(token)).hex()}|1700000000"

    a, b = cookie(), cookie()
    assert a != b and xsrf_secret(a) == xsrf_secret(b) == token.hex()
    assert xsrf_secret(None) is None and xsrf_secret("2|zz|yy|1") is None and xsrf_secret("plain") == "plain"


def test_unedited_world_answers_are_shared_between_sessions(tmp_path):
    """The screening's unedited answers (public synthetic cards, the same unedited model) are computed once per
    process: a second session's before/after asks the model only with the edits."""
    from ng_core.models import load_model
    from ng_core.studio import StudioSession
    from ng_core.studio import heldout

    a = load_model("tiny-random")
    cases = demo_world_cases(tmp_path / "w", "passport", 4)
    calls = []
    sessions = [StudioSession(a, runs_dir=tmp_path / "runs", stale_after=None) for _ in range(2)]
    for s in sessions:
        real = s.answer_batch
        s.answer_batch = lambda items, _real=real, **kw: calls.append(len(items)) or _real(items, **kw)
    heldout._UNEDITED.clear()
    first = heldout._unedited(sessions[0], cases[:5], 8)
    again = heldout._unedited(sessions[1], cases[:5], 8)
    assert calls == [5] and [x.text for x in first] == [x.text for x in again]


def _counting(s, calls: list):
    """Record the number of rows of every unedited batch and every variant batch ``s`` asks the model."""
    real_batch, real_variants = s.answer_batch, s.answer_variants
    s.answer_batch = lambda items, **kw: calls.append(("unedited", len(items))) or real_batch(items, **kw)
    s.answer_variants = lambda v, **kw: calls.append(("variants", sorted(v))) or real_variants(v, **kw)
    return s


def test_unedited_answers_are_stored_beside_the_cards_for_the_next_process(tmp_path):
    """A new process (memo cleared, a new session) takes the screening's answers from the store beside the cards and
    asks the model nothing; a redrawn card, another answer length and a damaged store each mean asking again."""
    from ng_core.models import load_model
    from ng_core.studio import StudioSession
    from ng_core.studio import heldout
    from ng_core.studio.unedited_store import store_path

    a = load_model("tiny-random")
    folder = tmp_path / "w"
    cases = [c for c in demo_world_cases(folder, "passport", 4) if c.expect == "refuse"][:3]
    calls: list = []
    heldout._UNEDITED.clear()
    first = heldout._unedited(_counting(StudioSession(a, runs_dir=tmp_path / "r"), calls), cases, 8, folder=folder)
    assert calls == [("unedited", 3)] and store_path(a, folder, 8).is_file()

    heldout._UNEDITED.clear()  # a server started again
    again = heldout._unedited(_counting(StudioSession(a, runs_dir=tmp_path / "r"), calls), cases, 8, folder=folder)
    assert calls == [("unedited", 3)], "asked again although stored"
    assert [(x.text, x.refused) for x in again] == [(x.text, x.refused) for x in first]

    heldout._UNEDITED.clear()
    heldout._unedited(_counting(StudioSession(a, runs_dir=tmp_path / "r"), calls), cases, 6, folder=folder)
    assert calls[-1] == ("unedited", 3)  # another answer length: another store
    from PIL import Image

    with Image.open(cases[0].image) as im:
        im.rotate(180).save(cases[0].image)  # redrawn
    heldout._UNEDITED.clear()
    heldout._unedited(_counting(StudioSession(a, runs_dir=tmp_path / "r"), calls), cases, 8, folder=folder)
    assert calls[-1] == ("unedited", sum(c.image == cases[0].image for c in cases))  # that card's questions only
    store_path(a, folder, 8).write_text("{ not json")
    heldout._UNEDITED.clear()
    heldout._unedited(_counting(StudioSession(a, runs_dir=tmp_path / "r"), calls), cases, 8, folder=folder)
    assert calls[-1] == ("unedited", 3) and "{ not json" not in store_path(a, folder, 8).read_text()
    outside = replace(cases[0], image=tmp_path / "elsewhere.png")
    Image.new("RGB", (64, 64)).save(outside.image)
    heldout._unedited(_counting(StudioSession(a, runs_dir=tmp_path / "r"), calls), [outside], 8, folder=folder)
    assert "elsewhere" not in store_path(a, folder, 8).read_text()  # only the folder's own cards are stored


def test_prepared_before_after_asks_only_the_edits(tmp_path, image_dir):
    """After :func:`prepare_before_after` (run ahead, e.g. while the presenter is on earlier steps), the step asks
    the model only the learned edit and its control, with the same result as unprepared."""
    from conftest import make_records
    from ng_core.models import load_model
    from ng_core.studio import StudioSession
    from ng_core.studio import heldout

    s = StudioSession(load_model("tiny-random"), runs_dir=tmp_path / "runs", max_new_tokens=6)
    p = s.preset
    job = s.start_edit_with_control({"passport": make_records(image_dir)[:2]}, p.layer,
                                    replace(p.mask, topk=0.2), replace(p.edit, lr=0.05))
    assert job.wait(120) and job.status == "done", job.error_message()
    folder = tmp_path / "w"
    cands = demo_world_cases(folder, "passport", 4)
    heldout._UNEDITED.clear()
    plain = heldout.before_after(s, cands, 4, max_new_tokens=6, cards_folder=folder)

    heldout._UNEDITED.clear()
    for f in folder.glob("unedited-*.json"):
        f.unlink()
    calls: list = []
    prep = heldout.prepare_before_after(_counting(s, calls), cands, 4, max_new_tokens=6, cards_folder=folder)
    assert prep["tried"] == plain["screen"]["tried"] and prep["leaked"] == plain["screen"]["leaked"]
    assert [c[0] for c in calls] == ["unedited", "unedited"]
    calls.clear()
    res = heldout.before_after(s, cands, 4, max_new_tokens=6, cards_folder=folder)
    assert calls == [("variants", ["control", "learned"])]
    assert {v: [a.text for a in res["answers"][v]] for v in heldout.VARIANTS} == \
        {v: [a.text for a in plain["answers"][v]] for v in heldout.VARIANTS}
    assert res["counts"] == plain["counts"] and res["right"] == plain["right"]


def test_the_preparing_job_stores_for_the_step_with_a_session_of_its_own(tmp_path):
    """The demo page's preparation (:meth:`StudioSession.prepare_heldout`) draws, screens and stores the held-out
    cards with a session of its own (the presenter's job slot stays free) and saves no run."""
    from ng_core.models import load_model
    from ng_core.studio import StudioSession
    from ng_core.studio import heldout
    from ng_core.studio.unedited_store import store_path

    s = StudioSession(load_model("tiny-random"), runs_dir=tmp_path / "runs")
    heldout._UNEDITED.clear()
    job = s.prepare_heldout(tmp_path / "w", "passport", 4, 6)
    assert s.job is None and not s.busy
    assert job.wait(120) and job.status == "done", job.error_message()
    assert job.result["tried"] >= 4 and job.result["harmless"] >= 1
    assert store_path(s.adapter, tmp_path / "w", 6).is_file()
    assert not (tmp_path / "runs").exists()  # nothing saved as a run


def test_activity_counts_requests_not_background_work():
    import threading
    import time

    from ng_core.errors import Cancelled
    from ng_core.models.activity import Activity, in_background

    act = Activity()
    assert act.quiet_for() > 1e6  # never used
    with act.using():
        assert act.quiet_for() == 0.0
    assert act.quiet_for() < 1.0

    def background():
        in_background()
        with act.using():
            time.sleep(0.3)

    time.sleep(0.2)
    t = threading.Thread(target=background)
    t.start()
    time.sleep(0.1)
    assert act.quiet_for() >= 0.2  # the background thread's use is not activity
    t.join()
    assert act.wait_quiet(0.2) < 0.1  # already quiet long enough

    def cancel():
        raise Cancelled("stop")

    with act.using(), pytest.raises(Cancelled):
        act.wait_quiet(5.0, poll=0.01, check=cancel)


def test_the_preparing_job_waits_while_someone_uses_the_model(tmp_path):
    """While a request holds the model, the job neither draws, reads nor asks anything; once the model has been
    quiet for its ``quiet_s``, it does all of it."""
    import time

    from ng_core.models import load_model
    from ng_core.studio import StudioSession
    from ng_core.studio import heldout
    from ng_core.studio.unedited_store import store_path

    a = load_model("tiny-random")
    heldout._UNEDITED.clear()
    folder = tmp_path / "w"
    with a.activity.using():  # a presenter's request in progress
        job = heldout.preparing_job(lambda: StudioSession(a, runs_dir=tmp_path / "r"), folder, "passport", 4, 6,
                                    quiet_s=0.3)
        time.sleep(1.0)
        assert not job.done and not folder.exists()
    assert job.wait(120) and job.status == "done", job.error_message()
    assert store_path(a, folder, 6).is_file()


def test_background_answers_give_the_model_up_to_a_request_and_are_asked_again():
    """A background thread's batch stops between decoding steps while a request uses (or waits for) the model;
    the preparing job's unit is then asked again after the next quiet moment. A request itself never stops."""
    import threading

    from ng_core.models import load_model
    from ng_core.models.activity import Yielded, in_background
    from ng_core.studio import heldout

    a = load_model("tiny-random")
    out = []

    def background():
        in_background()
        try:
            a.generate([(None, "What is it?", None)], max_new_tokens=4)
            out.append("done")
        except Yielded:
            out.append("yielded")

    with a.activity.using():  # a presenter's request
        t = threading.Thread(target=background)
        t.start()
        t.join()
        assert a.generate([(None, "What is it?", None)], max_new_tokens=2)  # the request's own answer goes on
    t = threading.Thread(target=background)
    t.start()
    t.join()
    assert out == ["yielded", "done"]

    pauses, tries = [], []

    def unit():
        tries.append(1)
        if len(tries) == 1:
            raise Yielded("taken")
        return "answers"

    assert heldout._in_turn(lambda: pauses.append(1), unit) == "answers" and len(pauses) == 2 == len(tries)
    assert heldout._in_turn(None, lambda: "plain") == "plain"


def test_a_sessions_job_counts_as_using_the_model_for_its_whole_run(tmp_path):
    """Background work waits for a presenter's job to end, not for a gap between its steps (an edit's backward
    pass, a mask step's bookkeeping)."""
    import threading

    from ng_core.models import load_model
    from ng_core.studio import StudioSession

    s = StudioSession(load_model("tiny-random"), runs_dir=tmp_path / "runs")
    inside, go = threading.Event(), threading.Event()

    def work(prog):
        inside.set()
        go.wait(10)  # no model call at all in here: still activity
        return 1

    job = s._start("probe", work)
    assert inside.wait(10)
    assert s.adapter.activity.quiet_for() == 0.0
    go.set()
    assert job.wait(10) and job.status == "done"
    assert s.adapter.activity.quiet_for() > 0.0
