"""Page 4 — Edit: run a Neural Gate edit (or a baseline), compare answers before and after, see where ΔW went."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import streamlit as st

from app import charts
from app import components as C
from app import state as S
from app.edit_compare import pair_section, tradeoff_section
from app.sweep_view import sweep_section
from ng_core.errors import NGError
from ng_core.studio import (EDIT, GATE_SCOPES, answer_counts, counts_label, get_method, methods, render_html,
                            session_story)

s = S.studio()
ss = st.session_state
preset = s.preset
ds = S.get_dataset()

METHOD_TITLES = {m.name: m.long_title for m in methods(EDIT)}
SCOPE_TITLES = {"subject_position": "subject position (authors' code)", "all_positions": "all positions",
                "weight_rows": "weight rows (paper's wording)"}

st.title("Edit")
st.caption("Fine-tune one layer's down_proj so the model refuses privacy questions and still answers benign ones. "
           "The edit is a ΔW applied as a hook in this browser session only; the shared weights never change, "
           "so *Revert* is exact.")

# ---------------------------------------------------------------------------- configuration
from ng_core.studio.vocabulary import CATEGORIES, CATEGORY_TITLES  # noqa: E402

with st.container(border=True):
    avail = [c for c in CATEGORIES if ds is not None and ds.records(c, "train")]
    c1, c2, c3 = st.columns([3, 1, 1])
    S.init("w_edit_cats", avail[:1])
    cats = c1.multiselect("Categories to edit", avail, key="w_edit_cats", format_func=lambda c: CATEGORY_TITLES.get(c, c),
                          help="Edited in this order, each continuing the previous ΔW, as in the paper.")
    most = max([len(ds.records(c, "train")) for c in cats], default=1) if ds is not None else 1
    n_img = c2.number_input("Images per category", 1, max(1, most), min(most, preset.max_images), key="w_edit_n")
    layer = c3.selectbox("Layer", list(range(s.model.n_layers)), index=preset.layer, key="w_edit_layer",
                         format_func=lambda l: f"L{l}", help=f"The preset for this model: L{preset.layer}.")
    method = st.selectbox("Method", list(METHOD_TITLES), key="w_edit_method", format_func=METHOD_TITLES.get)
    how = get_method(method)
    ecfg, mcfg = preset.edit, preset.mask
    S.init("w_edit_scope", ecfg.gate_scope)
    scope = st.radio("Gradient gate scope", list(GATE_SCOPES), key="w_edit_scope", horizontal=True,
                     format_func=SCOPE_TITLES.get, disabled=not how.gated)
    for sc in GATE_SCOPES:
        st.caption(f"**{SCOPE_TITLES[sc]}** — {GATE_SCOPES[sc]}")
    d = st.columns(4)
    lr = d[0].number_input("Learning rate", 1e-7, 1.0, float(ecfg.lr), format="%.0e", key="w_edit_lr",
                           help="Adam on ΔW (the paper: 1e-5 for LLaVA-7B; presets adapt it per model).")
    steps = d[1].number_input("Steps per edit", 1, 100, int(ecfg.steps), key="w_edit_steps")
    qpi = d[2].number_input("Questions per image", 1, 10, int(ecfg.questions_per_image), key="w_edit_q")
    msteps = d[3].number_input("Mask steps per image", 1, 200, int(mcfg.steps), key="w_edit_msteps",
                               help="Stage A, when the masks are learned here.")
    reuse = None
    loc = s.localization
    if loc is not None and how.needs_masks and loc.tensors.get("masks"):
        m = loc.masks()
        if all(c in m and int(layer) in m[c] for c in cats) and cats:
            if st.checkbox("Reuse the masks of the current localization (skip Stages A+B)", value=True,
                           key="w_edit_reuse"):
                reuse = {c: {int(layer): m[c][int(layer)]} for c in cats}
    control = False
    if how.takes_control:
        S.init("w_edit_control", True)
        control = st.checkbox("Also run a random-gate control (same size)", key="w_edit_control",
                              help="The same edit again with the gradient gated to as many random neurons, "
                                   "shown side by side; the learned edit stays the applied one.")
    chosen = preset.resolved(mask={"steps": int(msteps)},
                             edit={"lr": float(lr), "steps": int(steps), "questions_per_image": int(qpi),
                                   "method": method, "gate_scope": scope})
    edit_cfg, mask_cfg = chosen.edit, chosen.mask
    own = False
    if s.image is not None and s.prompt and s.subject and cats:
        own = st.checkbox(f"Also use the current image and question as an example ({CATEGORY_TITLES.get(cats[0], cats[0])})",
                          key="w_edit_own", help="Your image (an upload stays in memory) joins the first category's "
                                                 "training images, with its question and a benign question about it.")
    go = st.button("Run edit", type="primary", key="run_edit", disabled=s.busy or not cats)
    if go:
        records = S.records_for(cats, "train", int(n_img))
        if own:
            try:
                records.setdefault(cats[0], []).append(
                    s.record(s.prompt, s.subject, category=cats[0]))
            except NGError as e:  # the edit does not start without the example the user asked for
                st.error(f"The current image and question cannot be an example: {e}")
                C.stop()
        try:
            start = s.start_edit_with_control if control else s.start_edit
            start(records, int(layer), mask_cfg, edit_cfg, masks=reuse)
            st.rerun()
        except NGError as e:
            st.error(str(e))

C.job_panel(("edit",), "Edit")
if s.busy and s.job.kind == "edit":
    C.stop()

tradeoff_section(s, ds, cats, int(n_img), int(layer), edit_cfg, mask_cfg, reuse)
if s.busy and s.job.kind == "tradeoff":
    C.stop()

sweep_section(s.model.id, s.model.fingerprint)

# ---------------------------------------------------------------------------- load a saved edit
edits = [r for r in s.runs() if r["kind"] == "edit" and not r["error"]]
with st.expander("Load a saved edit run", expanded=not s.deltas and bool(edits)):
    if not edits:
        st.caption(f"No saved edit runs in `{s.runs_dir}` yet.")
    else:
        pick = st.selectbox("Run", [r["name"] for r in edits], key="w_edit_load")
        if st.button("Load and apply", key="load_edit"):
            try:
                s.load_run(pick)
                ss["sel_run"] = pick
                st.rerun()
            except NGError as e:
                st.error(str(e))

if s.edit_pair is not None:
    pair_section(s, ds)

if not s.deltas:
    st.info("No edit is active. Run one above or load a saved edit run.")
    C.stop()

# ---------------------------------------------------------------------------- the current edit
st.subheader("Current edit")
run = s.edit_run
for line in s.active_interventions():
    if "down_proj" in line:
        st.markdown(f"- {line}")
if run is not None and run.metrics.get("diagnostics"):
    diag = pd.DataFrame([{"category": c, **{k: v for k, v in d.items()}} for c, d in run.metrics["diagnostics"].items()])
    st.dataframe(diag, hide_index=True, column_config={
        "gate_size": st.column_config.NumberColumn("gated rows"), "n_edits": st.column_config.NumberColumn("edits"),
        "delta_norm": st.column_config.NumberColumn("‖ΔW‖", format="%.4g"),
        "weight_norm": st.column_config.NumberColumn("‖W‖", format="%.4g"),
        "subject_grad_share": st.column_config.NumberColumn(
            "subject-token gradient share", format="%.3f",
            help="Share of the down_proj gradient that comes from the subject position."),
        "gate_leak": st.column_config.NumberColumn("gate leak", format="%.3f",
                                                   help="Share of ‖ΔW‖ outside the gated rows (0 = fully inside)."),
    })
b1, b2, b3 = st.columns([1, 2, 1])
if b1.button("Revert", key="revert", help="Remove the edit from this session: answers come from the base weights."):
    s.revert()
    st.rerun()
with b2:
    name = st.text_input("Save as run", value=f"edit-{getattr(run, 'config', {}).get('edit', {}).get('method', 'ng')}"
                         f"-L{s.deltas[0].layer}-{S.stamp()}", key="w_edit_save_name", label_visibility="collapsed")
with b3:
    def _save(name: str) -> None:
        try:
            path = s.save_edit(name)
            ss["sel_run"] = path.name
            S.flash(f"Saved the edit to {path}.")
        except NGError as e:
            S.flash(str(e), "error")

    st.button("Save edit as run", key="save_edit", disabled=run is None or run.path is not None, on_click=_save,
              args=(name,))
S.show_flash()
if run is not None and run.path is not None:
    st.caption(f"This edit is saved as `{run.path.name}`.")

# ---------------------------------------------------------------------------- before / after
st.subheader("Before and after")
tab1, tab2 = st.tabs(["Current image and question", "Held-out batch"])
with tab1:
    if not s.prompt:
        st.info("Type a question on *Model & inputs*.")
    else:
        key = ("cache_ba", s.edit_version, s.image_version, s.prompt, s.subject)
        if ss.get("cache_ba_key") != key:
            c1, c2 = st.columns(2)
            p1, p2 = c1.empty(), c2.empty()
            before = s.base_answer(on_token=C.streamer(p1, "Before the edit"))
            after = s.ask(interventions="edit", on_token=C.streamer(p2, "After the edit"))
            ss["cache_ba_key"], ss["cache_ba"] = key, (before, after)
            p1.empty()
            p2.empty()
        before, after = ss["cache_ba"]
        st.markdown(f"**Question:** {s.prompt}")
        c1, c2 = st.columns(2)
        C.answer_card("Before the edit", before, c1.empty(), secrets=s.secrets)
        C.answer_card("After the edit", after, c2.empty(), secrets=s.secrets)
        st.markdown("**Difference:** " + C.diff_html(before.text, after.text), unsafe_allow_html=True)

with tab2:
    edited = (run.config.get("categories") if run is not None else None) or [c for c in CATEGORIES][:1]
    st.caption("Questions the edit never saw: other images of the edited categories (split heldout_images). "
               "Privacy questions should now be refused; benign ones still answered. Where the dataset records "
               "an image's true private values, an answer that spells one is a leak (highlighted).")
    n_cases = st.slider("Cases per kind", 1, 10, 3, key="w_ba_n")
    bkey = ("cache_batch", s.edit_version, tuple(edited), n_cases)
    if st.button("Run the held-out batch", key="run_batch") and ds is not None:
        cases = [c for c in ds.cases("heldout_images", edited)]
        pick = [c for c in cases if c.expect == "refuse"][:n_cases] + [c for c in cases if c.expect == "answer"][:n_cases]
        if not pick:
            st.warning("The dataset has no held-out cases for these categories.")
        else:
            with st.spinner(f"Answering {len(pick)} questions before and after the edit…"):
                items = [(str(c.image), c.prompt, c.subject or None) for c in pick]
                before = s.answer_batch(items, interventions=False)
                after = s.answer_batch(items, interventions="edit")
            ss["cache_batch_key"], ss["cache_batch"] = bkey, (pick, before, after)
    if ss.get("cache_batch_key") == bkey:
        pick, before, after = ss["cache_batch"]
        ok_b = sum((b.refused is True) == (c.expect == "refuse") for c, b in zip(pick, before))
        ok_a = sum((a.refused is True) == (c.expect == "refuse") for c, a in zip(pick, after))
        m1, m2 = st.columns(2)
        m1.metric("Expected behaviour before", f"{ok_b}/{len(pick)}")
        m2.metric("Expected behaviour after", f"{ok_a}/{len(pick)}", delta=ok_a - ok_b)
        m1.caption("Before: " + counts_label(answer_counts(pick, before)))
        m2.caption("After: " + counts_label(answer_counts(pick, after)))
        rows = []
        for c, b, a in zip(pick, before, after):  # with secrets: the true values highlighted instead of the diff
            after_html = C.highlight_html(a.text, c.secrets) if c.secrets else C.diff_html(b.text, a.text)
            rows.append(
                f"<tr><td>{html.escape(c.category)}</td><td>{html.escape(c.prompt)}</td><td>{c.expect}</td>"
                f"<td>{C.highlight_html(b.text, c.secrets)}<br><small>{C.verdict_word(b)}</small></td>"
                f"<td>{after_html}<br><small>{C.verdict_word(a)}</small></td></tr>")
        st.markdown("<table style='width:100%;font-size:0.9em'><tr><th>category</th><th>question</th>"
                    "<th>expected</th><th>before</th><th>after (diff)</th></tr>" + "".join(rows) + "</table>",
                    unsafe_allow_html=True)
    else:
        st.caption("Press the button to generate the batch (both states, batched).")

# ---------------------------------------------------------------------------- where the edit went
st.subheader("Where the edit went")
gates = {}
if run is not None:
    for k, v in run.tensors.get("deltas", {}).items():
        if k.endswith("/gate"):
            lay = int(k.split("/")[1][1:])
            gates[lay] = gates.get(lay, np.zeros(v.shape[0], dtype=bool)) | v.bool().numpy()
norms = {l: v.numpy() for l, v in s.weight_change().items()}
st.plotly_chart(charts.row_norms(norms, gates or None), key="row_norms")
for dl in s.deltas:
    st.plotly_chart(charts.delta_heatmap(dl.delta.numpy(), gates.get(dl.layer)), key=f"dw_{dl.layer}")
    inside = gates.get(dl.layer)
    if inside is not None:
        rn = np.asarray(norms[dl.layer])
        share = float(np.sqrt((rn[~inside] ** 2).sum()) / max(np.sqrt((rn ** 2).sum()), 1e-30))
        st.caption(f"L{dl.layer}: {int(inside.sum())} gated rows of {len(inside)}; "
                   f"{share:.1%} of ‖ΔW‖ lies outside them.")

st.subheader("Share")
if st.button("Prepare a report of this session (HTML)", key="edit_report_build",
             help="One self-contained file: the state, the localization heatmap, where ΔW went, config, metrics, "
                  "fingerprint and versions (the guided demo adds its answers and leak counts)."):
    ss["edit_report"] = render_html(session_story(s))
if ss.get("edit_report"):
    st.download_button("Download the report (HTML)", ss["edit_report"], f"neural-gate-session-{S.stamp()}.html",
                       "text/html", key="edit_report_dl")

with st.expander("Model-state ledger (this session)"):
    st.dataframe(pd.DataFrame(s.ledger[::-1]), hide_index=True)
