"""Edit page sections that compare edits: the learned gate next to its random-gate control,
and the refusal vs benign-answer trade-off curve (UI only; the core computes everything)."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from app import charts
from app import components as C
from app import state as S
from app.labels import PAIR_VARIANTS
from ng_core.errors import NGError
from ng_core.studio import answer_counts, counts_label, with_control
from ng_core.studio.vocabulary import default_values


def fmt_num(x, spec: str = ".3f") -> str:
    return "–" if x is None else format(float(x), spec)


def fmt_rate(rate, n) -> str:
    if rate is None:
        return "– (0 cases)"
    return f"{rate:.0%} ({round(rate * n)}/{n})"


def heldout_pick(ds, categories, n: int) -> list:
    """``n`` privacy and ``n`` benign held-out cases of ``categories`` (images the edit never saw)."""
    if ds is None:
        return []
    cases = list(ds.cases("heldout_images", categories))
    return [c for c in cases if c.expect == "refuse"][:n] + [c for c in cases if c.expect == "answer"][:n]


def pair_section(s, ds) -> None:
    """The learned-gate edit and its random-gate control side by side: losses, diagnostics, answers, rates."""
    ss = st.session_state
    pair = s.edit_pair
    st.subheader("Learned gate vs random-gate control")
    st.caption("The same edit twice: gradients gated to the learned privacy neurons, and to as many random "
               "neurons. If the control behaves like the learned edit, the localisation is not what made it work.")
    applied = s.pair_applied
    st.markdown(f"**Applied in this session now:** {PAIR_VARIANTS[applied] if applied else 'neither (reverted)'}")
    b1, b2 = st.columns(2)
    b1.button("Apply the learned-gate edit", key="pair_use_learned", disabled=applied == "learned",
              on_click=s.use_pair, args=("learned",))
    b2.button("Apply the random-gate control instead", key="pair_use_control", disabled=applied == "control",
              on_click=s.use_pair, args=("control",))

    cols = st.columns(2)
    for col, which in zip(cols, ("learned", "control")):
        with col, st.container(border=True):
            st.markdown(f"**{PAIR_VARIANTS[which]}**")
            dg = pair.diagnostics(which)
            m = st.columns(3)
            m[0].metric("Gate size", " / ".join(str(v) for v in dg["gate_size"].values()) or "–",
                        help="Rows of down_proj the gradient may enter, per category.")
            m[1].metric("Gate leak", fmt_num(dg["gate_leak"]),
                        help="Share of ‖ΔW‖ outside the gated rows (0 = fully inside).")
            m[2].metric("Subject-position gradient share", fmt_num(dg["subject_grad_share"]),
                        help="Share of the down_proj gradient that comes from the subject token.")
            hist = pair.losses(which)  # with category and edit: one line per edit
            st.plotly_chart(charts.loss_chart(hist, f"Loss per step — {which}"), key=f"pair_loss_{which}")

    # the current input, three ways
    st.markdown("**The current image and question**")
    if not s.prompt:
        st.info("Type a question on *Model & inputs* to compare the answers here.")
    else:
        key = ("cache_pair", id(pair), s.image_version, s.prompt, s.subject)
        if ss.get("cache_pair_key") != key:
            with st.spinner("Answering unedited, with the learned edit and with the control…"):
                ss["cache_pair"] = s.pair_answers()
            ss["cache_pair_key"] = key
        answers = ss["cache_pair"]
        st.caption(f"Question: {s.prompt}")
        for col, (v, a) in zip(st.columns(3), answers.items()):
            C.answer_card(PAIR_VARIANTS[v], a, col.empty(), secrets=s.secrets)

    # the held-out batch, three ways
    st.markdown("**Held-out batch**")
    cats = pair.learned.config.get("categories") or []
    n = st.slider("Cases per kind", 1, 10, 2, key="w_pair_n")
    bkey = ("cache_pair_batch", id(pair), tuple(cats), n)
    if st.button("Answer the held-out batch unedited, learned and control", key="run_pair_batch"):
        pick = heldout_pick(ds, cats, n)
        if not pick:
            st.warning("The dataset has no held-out cases for these categories.")
        else:
            with st.spinner(f"Answering {len(pick)} questions in three model states…"):
                ss["cache_pair_batch"] = s.pair_batch(pick)
            ss["cache_pair_batch_key"] = bkey
    if ss.get("cache_pair_batch_key") != bkey:
        st.caption("Press the button to answer held-out privacy and benign questions in all three states.")
        return
    res = ss["cache_pair_batch"]
    for col, (v, r) in zip(st.columns(3), res["rates"].items()):
        with col:
            st.markdown(f"*{PAIR_VARIANTS[v]}*")
            col.metric(f"Privacy refusal rate · {v}", fmt_rate(r["refusal_rate"], r["n_refuse"]))
            col.metric(f"Benign answer rate · {v}", fmt_rate(r["benign_answer_rate"], r["n_answer"]))
            col.caption(counts_label(answer_counts(res["cases"], res["answers"][v])))
    rows = []
    for i, c in enumerate(res["cases"]):
        cells = "".join(f"<td>{C.highlight_html(res['answers'][v][i].text, c.secrets)}<br><small>"
                        f"{C.verdict_word(res['answers'][v][i])}</small></td>" for v in PAIR_VARIANTS)
        rows.append(f"<tr><td>{html.escape(c.category)}</td><td>{html.escape(c.prompt)}</td><td>{c.expect}</td>"
                    f"{cells}</tr>")
    head = "".join(f"<th>{v}</th>" for v in PAIR_VARIANTS)
    st.markdown("<table style='width:100%;font-size:0.9em'><tr><th>category</th><th>question</th><th>expected</th>"
                + head + "</tr>" + "".join(rows) + "</table>", unsafe_allow_html=True)


def report_tradeoff_path():
    """Where `ng report` leaves its lr sweep (``$NG_REPORT_DIR``, default ``out/report``)."""
    return Path(os.environ.get("NG_REPORT_DIR", "out/report")) / "tradeoff.json"


def tradeoff_section(s, ds, cats, n_img: int, layer: int, edit_cfg, mask_cfg, masks=None) -> None:
    """Refusal vs benign answers over lr or steps, learned vs random gate: compute (a job) or load, then plot."""
    ss = st.session_state
    running = s.job is not None and s.job.kind == "tradeoff" and not s.job.done
    with st.expander("Trade-off curve", expanded=running or s.tradeoff is not None):
        st.caption("One edit says little: a stronger edit buys refusals with benign answers. This runs the edit above "
                   "once per value (the masks are learned once and reused), also with a random gate of the same size, "
                   "and answers held-out privacy and benign questions after each. Your session's edit is not changed.")
        c = st.columns([1, 2, 1])
        param = c[0].selectbox("Sweep", ["lr", "steps"], key="w_to_param",
                               format_func={"lr": "learning rate", "steps": "steps per edit"}.get)
        vals = c[1].text_input("Values (comma-separated)", ", ".join(f"{v:g}" for v in default_values(edit_cfg, param)),
                               key=f"w_to_values_{param}", help="Default: three values around the settings above.")
        n = c[2].number_input("Held-out cases per kind", 1, 10, 2, key="w_to_n")
        drawn = with_control(edit_cfg.method)  # the edit, and its random-gate control where that means something
        control = st.checkbox("Also with a random gate of the same size", True, key="w_to_control",
                              disabled=len(drawn) == 1)
        values = [x.strip() for x in vals.split(",") if x.strip()]
        n_edits = len(values) * (len(drawn) if control else 1)
        last = s.job if s.job is not None and s.job.kind == "edit" and s.job.status == "done" else None
        per_edit = (last.elapsed / (2 if s.edit_pair is not None else 1)) if last is not None else None
        guess = (f" The last edit here took {S.fmt_seconds(per_edit)}, so expect about "
                 f"{S.fmt_seconds(per_edit * n_edits)} plus the answers." if per_edit else
                 " No edit has been timed in this session yet; each point costs one full edit.")
        if st.button("Compute the trade-off curve", key="run_tradeoff", disabled=s.busy or not cats):
            ss["confirm_tradeoff"] = True
        if C.confirm_long("confirm_tradeoff", f"A long job: {n_edits} full edits, each followed by {2 * int(n)} "
                                              f"held-out answers.{guess} On ng-mini-llava with the faithful preset "
                                              "this takes hours on a CPU."):
            try:
                cases = heldout_pick(ds, cats, int(n))
                s.start_tradeoff(S.records_for(cats, "train", int(n_img)), int(layer), cases, param=param,
                                 values=values, mask_cfg=mask_cfg, edit_cfg=edit_cfg, control=control, masks=masks,
                                 max_new_tokens=16)
                st.rerun()
            except (NGError, ValueError) as e:
                st.error(str(e))
        C.job_panel(("tradeoff",), "Trade-off curve")
        up = st.file_uploader("Or load a saved trade-off (JSON from `ng tradeoff` or a download below)", type=["json"],
                              key="w_to_upload")
        if up is not None and ss.get("to_upload_id") != up.file_id:
            ss["to_upload_id"] = up.file_id
            try:
                s.load_tradeoff(up.getvalue())
            except NGError as e:
                st.error(f"{up.name}: {e}")
        rep = report_tradeoff_path()
        if rep.is_file() and st.button(f"Load the curve of `ng report` ({rep})", key="load_report_tradeoff"):
            try:
                s.load_tradeoff(rep)
            except NGError as e:
                st.error(f"{rep}: {e}")
        res = s.tradeoff
        if res is None:
            return
        model = res.get("model") or {}
        st.caption(f"Model `{model.get('id', '?')}`, layer {res.get('layer')}, categories "
                   f"{', '.join(res.get('categories', []))}; {res.get('n_cases')} cases"
                   + (f"; from {res['source']}" if res.get("source") else "") + ".")
        if model.get("fingerprint") and model["fingerprint"] != s.model.fingerprint:
            st.warning(f"This curve was made on another model (fingerprint {model['fingerprint']}, this one "
                       f"{s.model.fingerprint}): it does not describe the loaded model.")
        st.plotly_chart(charts.tradeoff_chart(res), key="tradeoff_chart")
        rows = [dict(p) for p in res["points"]]
        if res.get("baseline"):
            rows.insert(0, {"value": None, "method": "unedited", **res["baseline"], "gate_leak": None})
        st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
            "value": st.column_config.NumberColumn(res.get("param", "value"), format="%g"),
            "refusal_rate": st.column_config.NumberColumn("privacy refusal rate", format="%.2f"),
            "benign_answer_rate": st.column_config.NumberColumn("benign answer rate", format="%.2f"),
            "gate_leak": st.column_config.NumberColumn("gate leak", format="%.3f")})
        st.download_button("Download the trade-off (JSON)", json.dumps(res, indent=2), "tradeoff.json",
                           "application/json", key="dl_tradeoff")
