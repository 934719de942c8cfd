"""Neural Gate Studio: the router. Run with ``streamlit run streamlit_app.py``.

Environment: ``NG_MODEL`` (default ``ng-mini-llava``; ``tiny-random`` for tests),
``NG_RUNS_DIR`` (default ``./runs``), ``NG_DATA_DIR`` (the sample dataset, generated on
first use when missing).
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Before torch loads: idle OpenMP threads sleep instead of spinning, which keeps a shared
# 2-core CPU responsive (spinning threads made small ops up to 50x slower under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="Neural Gate Studio", layout="wide", initial_sidebar_state="expanded")
# Shown at once: on a cold start the imports below (torch, the model code) take seconds of blank page.
_boot = st.empty()
if "studio" not in st.session_state:
    _boot.info("Starting Neural Gate Studio…")

from app import components, state  # noqa: E402

PAGES = {
    "Neural Gate Studio": [
        st.Page("app/page_demo.py", title="Guided demo", url_path="demo", default=True),
        st.Page("app/page_model.py", title="Model & inputs", url_path="model"),
        st.Page("app/page_localize.py", title="Localize", url_path="localize"),
        st.Page("app/page_gates.py", title="Gates", url_path="gates"),
        st.Page("app/page_edit.py", title="Edit", url_path="edit"),
        st.Page("app/page_evaluate.py", title="Evaluate", url_path="evaluate"),
        st.Page("app/page_runs.py", title="Runs", url_path="runs"),
    ]
}

page = st.navigation(PAGES, position="sidebar", expanded=True)
studio = state.studio()
_boot.empty()
if st.session_state.get("url_error"):
    st.warning(st.session_state.pop("url_error"))
components.sidebar()
try:
    page.run()
finally:
    state.remember_tab()  # first: it draws nothing, so a page that stopped cannot keep it from running
    try:
        # Redrawn after the page, so the sidebar shows what the page just changed (a page that stops redraws it
        # itself, components.stop: after st.stop() the next element raises again).
        components.refresh_state_panel()
    finally:
        state.sync_url()
