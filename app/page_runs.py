"""Page 6 — Runs: the run bundles on disk; inspect, load, compare, download, delete."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app import components as C
from app import state as S
from ng_core.studio.vocabulary import Run
from ng_core.errors import NGError

s = S.studio()
ss = st.session_state

st.title("Runs")
st.caption(f"Run bundles in `{s.runs_dir}`: configuration, masks, scores, ΔW and metrics of each localization, "
           "scoring or edit. Loading an edit run applies its ΔW to this session; a link with `?run=NAME` opens it.")

S.show_flash()
runs = s.runs()
if not runs:
    st.info("No run bundles yet. Save a localization or an edit, or set NG_RUNS_DIR to a folder that has some.")
    C.stop()

table = pd.DataFrame([{"name": r["name"], "kind": r["kind"] or "?", "model": r["model"] or "?",
                       "created": r["created"] or "", "problem": r["error"] or ""} for r in runs])
st.dataframe(table, hide_index=True, key="runs_table")

names = [r["name"] for r in runs]
sel = ss.get("sel_run") if ss.get("sel_run") in names else names[-1]
S.init("w_run_pick", sel)
if ss["w_run_pick"] not in names:
    ss["w_run_pick"] = sel
name = st.selectbox("Run", names, key="w_run_pick")
ss["sel_run"] = name


def flat(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v, default=str)
    return out


try:
    run = Run.load(s.run_path(name))
except NGError as e:
    st.error(f"{name} is broken and cannot be loaded: {e}")
    run = None
except Exception as e:  # noqa: BLE001 - one broken run never breaks the page
    st.error(f"{name} is broken and cannot be loaded: {type(e).__name__}: {e}")
    run = None

if run is not None:
    mismatch = None
    try:
        s.check_run(run)
    except NGError as e:
        mismatch = str(e)
    c = st.columns(4)
    c[0].metric("Kind", run.kind)
    c[1].metric("Model", run.model.get("id", "?"))
    c[2].metric("Tensors", sum(len(v) for v in run.tensors.values()))
    c[3].metric("Categories", len(run.config.get("categories", [])))
    st.caption(f"Created {(run.created or '?').replace('T', ' ')} · model fingerprint "
               f"`{run.model.get('fingerprint', '?')}` · folder `{run.path}`")
    if mismatch:
        st.warning(f"Made for another model: {mismatch}")
    a1, a2, a3 = st.columns(3)
    if a1.button("Load into this session", key="load_run", type="primary", disabled=bool(mismatch)):
        try:
            s.load_run(name)
            st.success(f"Loaded {name}" + (": its edit is now active." if run.kind == "edit" else
                                          ": its neurons are on *Localize* and *Gates*."))
        except NGError as e:
            st.error(str(e))
    try:
        a2.download_button("Download (zip)", s.run_archive(name), file_name=f"{name}.zip", mime="application/zip",
                           key="download_run")
    except NGError as e:
        a2.caption(str(e))
    def _delete(name: str) -> None:
        try:
            s.delete_run(name)
            for k in ("sel_run", "w_run_pick"):
                ss.pop(k, None)
            ss["w_confirm_delete"] = False
            S.flash(f"Deleted {name}.")
        except NGError as e:
            S.flash(str(e), "error")

    with a3:
        may, why = s.can_delete_run(name)
        confirm = st.checkbox("Confirm delete", key="w_confirm_delete", disabled=not may)
        st.button("Delete", key="delete_run", disabled=not (confirm and may), on_click=_delete, args=(name,),
                  help=why or None)
        if not may:
            st.caption("Saved by another session (or the CLI): read-only here.")
    t1, t2, t3 = st.tabs(["Configuration", "Metrics", "Files"])
    with t1:
        cfg = flat(run.config | {"seeds": run.seeds, "versions": run.versions})
        st.dataframe(pd.DataFrame({"setting": list(cfg), "value": [str(v) for v in cfg.values()]}),
                     hide_index=True, height=320, key="run_config")
    with t2:
        m = {k: v for k, v in run.metrics.items() if k not in ("losses", "prompts")}
        st.json(m, expanded=1)
    with t3:
        st.dataframe(pd.DataFrame([{"file": f, "tensor": k, "shape": str(tuple(v.shape)), "dtype": str(v.dtype)}
                                   for f, ts in run.tensors.items() for k, v in ts.items()]), hide_index=True)

st.subheader("Compare runs")
pick = st.multiselect("Runs to compare", names, default=names[-2:] if len(names) > 1 else names, key="w_cmp_runs")
if len(pick) >= 2:
    cols = {}
    for n in pick:
        try:
            r = Run.load(s.run_path(n))
            cols[n] = flat({"kind": r.kind, "model": r.model.get("id"), "config": r.config, "seeds": r.seeds,
                            "metrics": {k: v for k, v in r.metrics.items() if k not in ("losses", "prompts")}})
        except Exception as e:  # noqa: BLE001 - a broken run is a column saying so
            cols[n] = {"error": str(e)}
    cmp = pd.DataFrame(cols).map(lambda v: "—" if v is None or (isinstance(v, float) and v != v) else str(v))
    only_diff = st.toggle("Only rows that differ", value=True, key="w_cmp_diff")
    if only_diff:
        cmp = cmp[cmp.nunique(axis=1) > 1]
    st.dataframe(cmp, key="cmp_table")
    st.caption("— : the run has no such setting or metric.")
else:
    st.caption("Pick two or more runs.")
