"""Session state, shared resources and shareable URLs for the dashboard (UI only).

- The model is loaded once per spec (``st.cache_resource``) on a worker thread, so a page
  shows a live status while the embedded default model is assembled the first time.
- Each browser session owns one :class:`ng_core.studio.StudioSession` in ``st.session_state``:
  its gates and edit never reach another session.
- ``st.query_params`` carries ``run``, ``layer`` and ``neuron`` (the page is the URL path).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from ng_core.studio import Job, StudioSession, load_model_job, must_assemble, sample_dataset
from ng_core.studio.tabs import TabRegistry, new_token, tab_key, xsrf_secret

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SAMPLES_PER_CATEGORY = 12  # 4 train images per category (edits can use more than 2)
MODEL_CHOICES = {
    "ng-mini-llava": "ng-mini-llava — embedded default (SmolLM2-135M + DINOv2-small)",
    "tiny-random": "tiny-random — 0.2M random weights, for tests and demos",
    "folder": "A local LLaVA folder (llava-hf format)…",
}
QP_KEYS = ("run", "layer", "neuron")


def default_model() -> str:
    return os.environ.get("NG_MODEL", "ng-mini-llava") or "ng-mini-llava"


def runs_dir() -> Path:
    return Path(os.environ.get("NG_RUNS_DIR", "runs")).expanduser()


def data_dir() -> Path:
    return Path(os.environ.get("NG_DATA_DIR", f".ng-cache/sample-data-{SAMPLES_PER_CATEGORY}")).expanduser()


def world_dir(category: str) -> Path:
    """Where the guided demo draws its held-out world-set cards of ``category`` (once; reused after)."""
    base = os.environ.get("NG_WORLD_DIR") or f"{data_dir()}-world"
    return Path(base).expanduser() / category


def demo_prepares() -> bool:
    """``NG_DEMO_PREPARE``: ``0`` stops the guided demo from preparing its held-out cards in the background."""
    return os.environ.get("NG_DEMO_PREPARE", "1").strip().lower() not in ("0", "off", "no", "false")


def reading_override() -> bool | None:
    """``NG_READING``: ``on`` / ``off`` forces the OCR reading channel; unset or ``auto``: as the model says."""
    v = os.environ.get("NG_READING", "auto").strip().lower()
    return {"on": True, "off": False}.get(v)


# ---------------------------------------------------------------------------- shared resources
@st.cache_resource(show_spinner=False, max_entries=3)
def model_job(spec: str, reading: bool | None = None) -> Job:
    """The model for ``spec``, loading on a worker thread (one per spec and reading switch for all sessions)."""
    return load_model_job(spec, reading=reading)


@st.cache_resource(show_spinner=False, max_entries=16)
def heldout_prep(fingerprint: str, category: str, folder: str, n_cards: int, n_tok: int, _session) -> Job:
    """The guided demo's held-out cards of ``category`` drawn, read and screened unedited on a worker that waits for
    quiet moments, once per server and model (:meth:`StudioSession.prepare_heldout`, on the first session's model,
    which every session of ``fingerprint`` shares); kept beside the cards for the next server."""
    return _session.prepare_heldout(Path(folder), category, n_cards, n_tok)


@st.cache_resource(show_spinner=False)
def dataset(path: str):
    """The sample dataset (generated on first use: a few synthetic images per category)."""
    return sample_dataset(path, per_category=SAMPLES_PER_CATEGORY)


def get_dataset():
    """The dataset, or None with a warning on the page when it cannot be made."""
    try:
        with st.spinner("Preparing the synthetic sample dataset (first use only)…"):
            return dataset(str(data_dir()))
    except Exception as e:  # noqa: BLE001 - shown to the user, pages still work without samples
        st.warning(f"The sample dataset is not available: {e}")
        return None


# ---------------------------------------------------------------------------- the session's model
def model_spec() -> str:
    ss = st.session_state
    if "model_spec" not in ss:
        ss["model_spec"] = default_model()
    return ss["model_spec"]


def set_model_spec(spec: str) -> None:
    """Switch this session to another model (call from a widget callback): its gates and edit are dropped."""
    ss = st.session_state
    if spec != ss.get("model_spec"):
        old = ss.get("studio")
        if old is not None:
            old.close()
        ss["model_spec"] = spec
        ss.pop("studio", None)
        keep = {"w_model_choice", "w_model_folder"}
        for k in [k for k in ss if str(k).startswith(("cache_", "w_", "sel_", "gate", "gl_")) and k not in keep]:
            del ss[k]


def studio(wait: float = 2.0) -> StudioSession:
    """This session's StudioSession; while the model loads, show its status and stop the page."""
    ss = st.session_state
    spec = model_spec()
    job = model_job(spec, reading_override())
    job.wait(wait)
    if not job.done:
        _loading_status(spec, job)
        st.stop()
    if job.status != "done":
        st.error(f"Cannot load the model **{spec}**: {job.error_message()}")
        c1, c2 = st.columns(2)
        c1.button("Retry", key="retry_model", on_click=lambda: model_job.clear(spec))
        if spec != default_model():
            def back():
                set_model_spec(default_model())
                st.session_state["w_model_choice"] = default_model()

            c2.button(f"Back to {default_model()}", key="back_default", on_click=back)
        st.stop()
    s = ss.get("studio")
    if s is None or not s.serves(job.result):
        s, page = _reattach(job.result)
        if s is not None:  # the same tab, reloaded: its card, values, edit and running job are back
            for k, v in page.items():
                ss.setdefault(k, v)
            ss["studio"] = s
        else:
            s = StudioSession(job.result, runs_dir=runs_dir(),
                              delete_any_run=os.environ.get("NG_DELETE_ANY_RUN", "") not in ("", "0"))
            ss["studio"] = s
            _restore_from_url(s)
    return s


# ---------------------------------------------------------------------------- a reload keeps the session
TAB_PARAM = "tab"
#: session-state keys of the page's story restored after a reload (the guided demo's steps; no widget keys, which
#: Streamlit refuses to set)
KEPT_KEYS = ("demo_card", "demo_cat", "demo_before", "demo_gated", "demo_card_answers", "demo_batch",
             "demo_batch_seconds", "demo_verdict", "demo_report", "demo_upload_id", "demo_upload_gen")


@st.cache_resource(show_spinner=False)
def tabs() -> TabRegistry:
    """The server's sessions by tab (:mod:`ng_core.studio.tabs`), shared by every browser session."""
    return TabRegistry()


def _browser_secret() -> str | None:
    """A value only this browser holds: Streamlit's XSRF cookie (None when it sets none)."""
    try:
        return xsrf_secret(st.context.cookies.get("_streamlit_xsrf"))
    except Exception:  # noqa: BLE001 - no context (bare mode): no reattaching
        return None


def _reattach(adapter):
    """(session, page state) of this tab before a reload, or (None, {}); gives the tab a token when it has none."""
    ss = st.session_state
    secret = _browser_secret()
    token = st.query_params.get(TAB_PARAM)
    s, page = tabs().get(tab_key(token, secret))
    if s is not None and s.serves(adapter):
        ss["tab_key"] = tab_key(token, secret)
        return s, page
    if secret:
        token = new_token()
        st.query_params[TAB_PARAM] = token
        ss["tab_key"] = tab_key(token, secret)
    return None, {}


def remember_tab() -> None:
    """Keep this tab's session and its page story for a reload (called after every run of the page)."""
    ss = st.session_state
    s = ss.get("studio")
    if s is not None and ss.get("tab_key"):
        tabs().put(ss["tab_key"], s, {k: ss[k] for k in KEPT_KEYS if k in ss})


@st.cache_data(show_spinner=False, ttl=600)
def _must_assemble(spec: str) -> bool:
    return must_assemble(spec)


@st.fragment(run_every=1.0)
def _loading_status(spec: str, job: Job) -> None:
    if job.done:
        st.rerun()
    ev = job.last
    with st.status(f"Preparing the model **{spec}**…", expanded=True):
        if _must_assemble(spec):
            st.write("The first start assembles the embedded default model from pretrained pieces "
                     "(a few minutes on a CPU); later starts take seconds.")
        else:
            st.write("Loading the model into memory (seconds).")
        st.progress(job.fraction, text=(ev.message if ev else "starting"))
        st.caption(f"{job.elapsed:.0f} s elapsed")


# ---------------------------------------------------------------------------- widget state
def init(key: str, value) -> None:
    """Give a widget key its value once (widget state is dropped when a page is left)."""
    if key not in st.session_state:
        st.session_state[key] = value


def keep(key: str, default=None):
    """A durable value (survives page switches), read."""
    return st.session_state.get(key, default)


def put(key: str, value) -> None:
    st.session_state[key] = value


# ---------------------------------------------------------------------------- URL state
def _restore_from_url(s: StudioSession) -> None:
    """On a new session: load ``?run=`` and select ``?layer=&neuron=``."""
    qp = st.query_params
    ss = st.session_state
    for k in ("layer", "neuron"):
        if k in qp:
            try:
                ss[f"sel_{k}"] = int(qp[k])
            except ValueError:
                pass
    name = qp.get("run")
    if name:
        try:
            s.load_run(name)
            ss["sel_run"] = name
        except Exception as e:  # noqa: BLE001
            ss["url_error"] = f"The link names run {name!r}, which cannot be loaded: {e}"


def sync_url() -> None:
    """Write the session's run / layer / neuron selection into the URL (only what changed)."""
    ss = st.session_state
    want = {"run": ss.get("sel_run"), "layer": ss.get("sel_layer"), "neuron": ss.get("sel_neuron")}
    qp = st.query_params
    for k, v in want.items():
        if v is None or v == "":
            if k in qp:
                del qp[k]
        elif qp.get(k) != str(v):
            qp[k] = str(v)


def select_neuron(layer: int | None, neuron: int | None) -> None:
    ss = st.session_state
    ss["sel_layer"], ss["sel_neuron"] = layer, neuron


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.0f} s"
    return f"{s // 60:.0f} min {s % 60:.0f} s"


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


# ---------------------------------------------------------------------------- records
def records_for(categories, split: str = "train", n: int | None = None) -> dict:
    """{category: image records} from the sample dataset (and the session's current image as 'current')."""
    out = {}
    ds = None
    for c in categories:
        if c == "current":
            rec = st.session_state.get("current_record")
            if rec is not None:
                out[c] = [rec]
            continue
        if ds is None:
            ds = get_dataset()
            if ds is None:
                return out
        recs = ds.records(c, split)
        out[c] = recs[:n] if n else recs
    return out


def flash(message: str, kind: str = "success") -> None:
    """A message for the next run (e.g. from a callback)."""
    st.session_state.setdefault("_flash", []).append((kind, message))


def show_flash() -> None:
    for kind, msg in st.session_state.pop("_flash", []):
        getattr(st, kind)(msg)
