"""Helpers to drive the dashboard headless with ``streamlit.testing.v1.AppTest``.

Test code only (the tests import it as ``app_testing``); it lives here, not in ``app/``, so it does not ship
with the dashboard.
"""
from __future__ import annotations

import functools
import io
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from app.state import SAMPLES_PER_CATEGORY
from ng_core.studio import sample_dataset

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "streamlit_app.py"


@functools.lru_cache(maxsize=None)
def shared_data_dir() -> str:
    """One small generated dataset per process (reused by every AppTest)."""
    d = Path(tempfile.mkdtemp(prefix="ng-app-data-")) / "data"
    sample_dataset(d, per_category=SAMPLES_PER_CATEGORY)
    return str(d)


def new_app(runs_dir, model: str = "tiny-random", timeout: float = 60, query: dict | None = None,
            page: str | None = "app/page_model.py"):
    """An AppTest of the router with NG_MODEL / NG_RUNS_DIR / NG_DATA_DIR set, run until the model is ready,
    then on ``page`` (default: *Model & inputs*; None stays on the landing page, the guided demo). With a
    ``query`` the landing page is kept, so the one-time messages about the link stay visible."""
    os.environ["NG_MODEL"] = model
    os.environ["NG_RUNS_DIR"] = str(runs_dir)
    os.environ["NG_DATA_DIR"] = shared_data_dir()
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    at = wait_ready(at)
    if page and not query:
        at.switch_page(page).run()
    return at


def wait_ready(at, limit: float = 120):
    """Rerun while the page only shows the model-loading status."""
    t0 = time.monotonic()
    while at.status and "studio" not in at.session_state and time.monotonic() - t0 < limit:
        time.sleep(0.3)
        at.run()
    return at


def finish_job(at, limit: float = 120):
    """Wait for the session's running job, then rerun the page to show its result."""
    s = at.session_state["studio"]
    if s.job is not None:
        assert s.job.wait(limit), f"job {s.job.kind} did not finish in {limit} s"
    return at.run()


def texts(at) -> str:
    """Everything the page shows as text (markdown, captions, alerts, titles, metrics), joined."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)


def png_bytes(size=(64, 48), color=(200, 30, 30), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def plotly_charts(at) -> list:
    return list(at.get("plotly_chart"))


def one_thread():
    """Generator for an autouse module fixture: one intra-op torch thread while it lasts (small ops on
    a shared CPU), and the NG_* variables that :func:`new_app` sets restored afterwards."""
    n = torch.get_num_threads()
    saved = {k: os.environ.get(k) for k in ("NG_MODEL", "NG_RUNS_DIR", "NG_DATA_DIR")}
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def image_captions(at) -> list[str]:
    return [c for im in at.image for c in im.captions]


def plotly_specs(at) -> list[dict]:
    return [json.loads(f.proto.spec) for f in plotly_charts(at)]


def chart_titles(at) -> list[str]:
    out = []
    for spec in plotly_specs(at):
        t = spec.get("layout", {}).get("title", {})
        out.append(t.get("text", "") if isinstance(t, dict) else str(t))
    return out
