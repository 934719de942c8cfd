"""Edit page section: the gate size x layer sweep of the current model (``ng sweep``), learned vs random."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from app import charts


def sweep_dir() -> Path:
    """Where `ng sweep` leaves its result folders (``$NG_SWEEP_DIR``, default ``out/sweep``)."""
    return Path(os.environ.get("NG_SWEEP_DIR", "out/sweep")).expanduser()


#: Sweeps published with the project (their numbers are quoted in RESULTS.md).
SHIPPED = Path(__file__).resolve().parent.parent / "docs" / "results"


def sweep_section(model_id: str, fingerprint: str | None = None) -> None:
    """Curves over gate size and over layer from the sweep folders of ``model_id`` (the user's newest first,
    then the ones published with the project); nothing if none. A sweep measured on other weights than the
    loaded model's (``fingerprint``: e.g. before the default model was retrained) says so."""
    from ng_core.studio.vocabulary import SWEEP_METRICS as METRICS
    from ng_core.studio.vocabulary import (SweepError, consistency_rows, curve_points, find_sweeps,
                                           learned_vs_random_rows, load_sweep)

    root = sweep_dir()
    found = []
    for r in (root, SHIPPED):
        try:
            found += [p for p in find_sweeps(r, model_id) if p not in found]
        except OSError:
            pass
    with st.expander("Does localisation matter? Gate size × layer sweep", expanded=bool(found)):
        if not found:
            st.caption(f"No `ng sweep` result for {model_id} in `{root}` (set NG_SWEEP_DIR to another folder). "
                       "Run e.g. `ng sweep --model ng-mini-llava --reduced` to make one.")
            return
        names = [str(p) for p in found]
        pick = st.selectbox("Sweep", names, key="w_sweep_pick") if len(names) > 1 else names[0]
        try:
            res = load_sweep(pick)
        except SweepError as e:
            st.error(str(e))
            return
        meta = res["meta"]
        st.caption(f"`{meta['command']}` — {meta['n_done']} of {meta['n_settings']} settings, seeds "
                   f"{', '.join(map(str, meta['seeds']))}, model fingerprint `{meta['model']['fingerprint']}`.")
        swept = meta["model"].get("fingerprint")
        if fingerprint and swept and swept != fingerprint:
            st.warning(f"This sweep was measured on other weights of {model_id} (fingerprint `{swept}`; the loaded "
                       f"model is `{fingerprint}`): its numbers describe that version. Rerun `{meta['command']}` "
                       "for this one.")
        ch = res.get("choice") or {}
        if ch.get("statement"):
            (st.success if ch.get("any_beats_random") else st.info)(ch["statement"])
        metrics = [m for m in METRICS if m != "score"]
        c1, c2 = st.columns(2)
        metric = c1.selectbox("Metric", metrics, index=metrics.index("refusal_heldout_images"), key="w_sweep_metric",
                              format_func=lambda m: METRICS[m][0])
        part = c2.radio("Cases", ["evaluation", "validation"], key="w_sweep_part", horizontal=True,
                        help="The preset candidate is chosen on the validation part only.")
        for axis, title in (("gate", "gate size"), ("layer", "layer")):
            pts = curve_points(res, axis, metric, part)
            if len(pts["x"]) < 2:
                st.caption(f"This sweep has fewer than two settings along {title}.")
                continue
            st.plotly_chart(charts.sweep_curve(pts, title, METRICS[metric][0], part), key=f"sweep_{axis}")
        rows = learned_vs_random_rows(res, metric, part)
        if rows:
            st.caption(f"Learned vs random gate on {METRICS[metric][0]} ({part} part). Seed by seed: both gates of a "
                       "seed edit the same images, so 'better–equal–worse' counts the seeds where the learned gate "
                       "did better; the sign test asks how likely that many wins are by chance.")
            st.dataframe(rows, hide_index=True, key="sweep_paired")
        cons = consistency_rows(res)
        if cons:
            st.caption("Are the learned rows consistent across images? For two seeds that edited different train "
                       "images: the share of gated rows their gates have in common, learned and random, against "
                       "chance (the paper's claim is that consistent neurons carry the concept).")
            st.dataframe(cons, hide_index=True, key="sweep_consistency")
