"""The dashboard's Streamlit settings (``.streamlit/config.toml``, next to ``streamlit_app.py``)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_full_garbage_collection_after_each_script_run():
    """A running job's progress fragment reruns every 0.7 s. With Streamlit's default ``runner.postScriptGC``
    each of those reruns ends in ``gc.collect(2)``, which walks every Python object of torch, transformers and
    the model (0.3-0.6 s on a 2-core CPU) holding the GIL: the page watching a job starved the job's thread."""
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["runner"]["postScriptGC"] is False
