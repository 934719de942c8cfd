"""Jobs of closed tabs cancel themselves: the heartbeat watchdog of ng_core.studio.Job, on tiny-random."""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import torch

from ng_core.method.interventions import Delta
from ng_core.studio import DEFAULT_STALE_AFTER, Job, StudioSession

PROMPT = "What is the number of the passport?"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def session(tiny, image_dir, tmp_path):
    s = StudioSession(tiny, runs_dir=tmp_path / "runs", max_new_tokens=8, stale_after=1.0)
    s.set_image(image_dir / "img0.png", private=False)
    s.set_prompt(PROMPT)
    return s


def _long_mask(s, steps):
    return replace(s.preset.mask, steps=steps, early_stop=0.0)


def test_default_and_library_jobs(tiny, tmp_path):
    assert StudioSession(tiny, runs_dir=tmp_path).stale_after == DEFAULT_STALE_AFTER == 60.0
    j = Job("x", lambda prog: (time.sleep(0.3), prog.update("x", 1, 1))).start()  # no watchdog by default
    assert j.wait(10) and j.status == "done"


def test_unpolled_localize_cancels_itself(session, records):
    job = session.start_localize({"passport": records[:1]}, [session.preset.layer], _long_mask(session, 5000))
    assert job.wait(60)
    assert job.status == "cancelled" and job.stale
    assert "stopped polling" in job.error_message() and "nothing was changed" in job.error_message()
    assert job.elapsed < 20  # 5000 steps would take far longer
    assert session.localization is None and not session.busy


def test_unpolled_edit_leaves_the_model_unchanged(session, records, tiny):
    W = tiny.down_proj(session.preset.layer).weight.detach().clone()
    keep = [Delta(2, torch.randn(tiny.down_proj(2).weight.shape, generator=torch.Generator().manual_seed(1)))]
    session.apply_edit(keep, label="kept")
    before = session.ask().text
    job = session.start_edit({"passport": records[:1]}, session.preset.layer, session.preset.mask,
                             replace(session.preset.edit, steps=5000, early_stop=0.0))
    assert job.wait(60)
    assert job.status == "cancelled" and job.stale
    assert session.deltas == keep and session.edit_run is None
    assert session.ask().text == before
    assert torch.equal(tiny.down_proj(session.preset.layer).weight, W)


def test_heartbeated_job_completes(session, records):
    session.stale_after = 0.3  # far shorter than the job, so only the heartbeats keep it alive
    job = session.start_localize({"passport": records[:1]}, [session.preset.layer], _long_mask(session, 400))
    stop = threading.Event()

    def poll():  # what the page's progress fragment does
        while not stop.is_set():
            job.heartbeat()
            stop.wait(0.03)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        assert job.wait(120)
    finally:
        stop.set()
        t.join()
    assert job.status == "done" and not job.stale, job.error_message()
    assert job.elapsed > session.stale_after  # long enough that the watchdog would have fired
    assert session.localization is job.result


def test_user_cancel_is_not_stale(session, records):
    job = session.start_localize({"passport": records[:1]}, [session.preset.layer], _long_mask(session, 5000))
    job.cancel()
    assert job.wait(60) and job.status == "cancelled" and not job.stale
    assert "by the user" in job.error_message()


def test_progress_phases_carry_the_watchdog_and_its_reason():
    from ng_core.errors import Cancelled
    from ng_core.progress import Progress

    job = Job("x", lambda prog: None, stale_after=0.05)  # not started: only its Progress is used
    part = job.progress.phase(1, 2, "second")
    part.update("edit", 1, 4, "step 1")
    assert (job.last.done, job.last.total, job.last.message) == (5, 8, "second: step 1")
    time.sleep(0.1)
    with pytest.raises(Cancelled, match="stopped polling"):
        part.check()  # a direct check inside a part (as evaluate does) sees the job's watchdog
    assert job.stale
    p = Progress()
    p.cancel()
    with pytest.raises(Cancelled, match="by the user"):
        p.phase(0, 3, "a").check()
