"""Page 0 — Guided demo: a card, its leak, the privacy neurons, gates, an edit, before/after, the report."""
from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from app import charts
from app import components as C
from app import state as S
from app.labels import PAIR_VARIANTS
from ng_core.data import CATEGORY_TITLES
from ng_core.errors import InputImageError, NGError
from ng_core.evaluation.leaks import counts_label
from ng_core.studio import (answer_counts, answer_entry, demo_differences, demo_preset, demo_question, demo_records,
                             heldout_cases, measured_lines, neuron_view, record_from_inputs, render_html,
                             session_story)

s = S.studio()
ss = st.session_state
ds = S.get_dataset()
P = demo_preset(s.adapter.model_id, s.adapter.n_layers)
D = P["demo"]
LAYER = int(P["layer"])

st.title("Guided demo")
st.caption("Can we make a vision-language model stop reading private details off an ID card — and only that? "
           "Seven steps, one click each. Everything happens in this browser session; the shared model never changes.")

if P["speed_setting"]:
    diffs = demo_differences(P)
    st.info("**Speed setting.** The demo uses the preset *demo." + P["name"] + "*, chosen to finish in about "
            f"{D['seconds_hint']} s on a small CPU, not the faithful preset of this model"
            + (f" ({'; '.join(diffs)})" if diffs else "") + ". Why these values, with the measurements behind them: "
            "*Demo settings* below.")
MEASURED = measured_lines(P.get("measured"))
if MEASURED:  # what this preset's edit did on cards and questions no setting was chosen on, misses included
    st.markdown("**What this edit did on cards and questions it never saw.** " + MEASURED[0])
    for line in MEASURED[1:]:
        if line.startswith("Targets"):
            st.warning(line)
        elif not line.startswith("Evidence"):
            st.info(line)
elif P["speed_setting"]:
    st.warning("This demo setting has no measured numbers on cards and questions it never saw.")
with st.expander("Demo settings"):
    st.caption(P["description"])
    st.json({"layer": LAYER, "mask": {k: v for k, v in P["mask"].to_dict().items() if k != "templates"},
             "edit": P["edit"].to_dict(), "demo": D}, expanded=False)


def done(flag: bool, text: str) -> str:
    return ("✅ " if flag else "") + text


# ---------------------------------------------------------------------------- 1. the card
st.header(done(bool(ss.get("demo_card")) and s.image is not None, "1 · Pick a card"))
st.caption("The model looks at a picture of a document and answers questions about it. Pick a synthetic card "
           "(its private details are made up, and we know them), or upload your own.")
if ds is None:
    st.error("The sample dataset is not available, so the demo cannot run.")
    st.stop()

cats = [c for c in ds.categories if ds.records(c, "train") and list(ds.cases("heldout_images", [c]))]
S.init("w_demo_cat", ss.get("demo_cat", cats[0] if cats else None))
c1, c2 = st.columns([2, 3])
cat = c1.selectbox("Kind of card", cats, key="w_demo_cat", format_func=lambda c: CATEGORY_TITLES.get(c, c))
ss["demo_cat"] = cat
sample = (ds.records(cat, "heldout_images") or ds.records(cat, "train"))[0]


def _reset_story() -> None:
    for k in ("demo_before", "demo_gated", "demo_batch", "demo_report", "demo_card_answers"):
        ss.pop(k, None)


def use_sample() -> None:
    s.set_image(sample.image, name=f"{cat} card (synthetic)", private=False)
    s.set_secrets(sample.secrets)
    s.set_prompt(demo_question(sample), sample.subject)
    ss["w_demo_q"] = s.prompt
    ss.pop("w_demo_subject", None)
    ss["demo_card"] = {"cat": cat, "own": False}
    _reset_story()


c1.button("Use this sample card", key="demo_use_sample", type="primary", on_click=use_sample)
with c2:
    up = st.file_uploader("…or upload your own card (stays in this session's memory)", type=["png", "jpg", "jpeg", "webp"],
                          key=f"w_demo_upload_{ss.get('demo_upload_gen', 0)}")
    if up is not None and ss.get("demo_upload_id") != up.file_id:
        ss["demo_upload_id"] = up.file_id
        try:
            s.set_image(up.getvalue(), name=up.name, private=True)
            s.set_prompt(demo_question(sample), sample.subject)
            ss["w_demo_q"] = s.prompt
            ss.pop("w_demo_subject", None)
            ss["demo_card"] = {"cat": cat, "own": True}
            _reset_story()
        except InputImageError as e:
            st.error(f"This file cannot be used: {e}")
card = ss.get("demo_card")
if not card or s.image is None:
    st.image(str(sample.image), caption=f"Sample: {CATEGORY_TITLES.get(cat, cat)}", width=260)
    st.stop()
cat = card["cat"]
i1, i2 = st.columns([1, 2])
i1.image(s.image, caption=s.image_name, width=260)
with i2:
    S.init("w_demo_q", s.prompt)
    q = st.text_input("Question", key="w_demo_q")
    subject = C.subject_picker(q, s.subject, key="w_demo_subject")
    if (q, subject) != (s.prompt, s.subject):
        try:
            s.set_prompt(q, subject)
            _reset_story()
        except NGError as e:
            st.error(str(e))
            st.stop()
    if not s.subject or s.subject.lower() not in q.lower():
        st.warning("Click the word the question is about (the subject): the privacy neurons act there.")
    if s.secrets:
        st.caption("The true private values on this card (we generated it): " + ", ".join(f"`{v}`" for v in s.secrets))
    elif card["own"]:
        st.caption("We do not know the private values on your own card, so leaks cannot be highlighted; the refusal "
                   "judge still tells whether the model refuses.")
    own_example = False
    if card["own"]:
        own_example = st.checkbox("Also use my card as a training example for the edit", key="w_demo_own_example",
                                  help="Your image joins the category's sample images when the neurons are found "
                                       "and the edit is made (in memory only).")


def demo_recs() -> dict:
    extra = []
    if card["own"] and own_example and s.subject:
        try:
            extra = [record_from_inputs(s.image, s.prompt, s.subject, sample.target, category=cat,
                                        adapter=s.adapter)]
        except NGError as e:
            st.warning(f"Your card cannot be an example: {e}")
    return demo_records(ds, cat, D["images"], extra)


# ---------------------------------------------------------------------------- 2. the leak
st.header(done("demo_before" in ss, "2 · Ask the unedited model"))
st.caption("First, the model as it is. If it reads a private detail off the card and says it, that is a leak "
           "(highlighted in red).")
if st.button("Ask the unedited model", key="demo_ask", disabled=not s.prompt):
    try:
        ss["demo_before"] = s.ask(interventions=False, max_new_tokens=D["max_new_tokens"])
    except NGError as e:
        st.error(str(e))
if "demo_before" not in ss:
    st.stop()
C.answer_card("The unedited model", ss["demo_before"], secrets=s.secrets)

# ---------------------------------------------------------------------------- 3. the privacy neurons
loc = s.localization
masks = loc.masks() if loc is not None and loc.tensors.get("masks") else {}
located = cat in masks and LAYER in masks[cat]
st.header(done(located, "3 · Find the privacy neurons"))
st.caption(f"Inside layer {LAYER}, some neurons carry the 'this is a private question' signal. We learn a switch "
           f"per neuron that makes the model refuse on {D['images']} {CATEGORY_TITLES.get(cat, cat)} images while it "
           "still answers harmless questions; the neurons whose switch flips are the privacy neurons.")
if st.button("Find the privacy neurons", key="demo_localize", disabled=s.busy):
    try:
        s.start_localize(demo_recs(), [LAYER], P["mask"], with_edit=False)
        st.rerun()
    except NGError as e:
        st.error(str(e))
C.job_panel(("localize",), "Finding the privacy neurons")
if s.busy and s.job.kind != "edit":
    # Only a running localization (or a job of another page) ends the page here. A running edit must not:
    # its progress panel below polls the job and reruns the page when it ends, and nothing else would.
    if s.job.kind != "localize":
        st.info(f"A {s.job.kind} job started on another page is running; the demo continues when it ends.")
    st.stop()
if not located:
    st.stop()
view = neuron_view(loc, category=cat)
st.plotly_chart(charts.neuron_heatmap(view), key="demo_heatmap", config={"displaylogo": False})
n_sel = int(view.selected.sum())
st.caption(f"{n_sel} privacy neurons found at L{LAYER} (rule: {view.rule}). Darker cells score higher; the table "
           "lists the strongest.")
st.dataframe(pd.DataFrame(view.rows(limit=8)), hide_index=True, key="demo_top")

# ---------------------------------------------------------------------------- 4. gates
st.header(done(bool(ss.get("demo_gated")), "4 · Switch them off"))
st.caption("A quick test without changing any weight: we silence those neurons while the model answers. If the "
           "answer changes, they matter for it.")
sel = view.selection() if n_sel else view.top_per_layer(D["gate_top"])
g1, g2 = st.columns(2)
if g1.button("Switch the privacy neurons off", key="demo_gates", disabled=s.busy):
    s.set_gates(s.make_gates(sel, 0.0, "subject", "residual", label="demo gate"))
    ss["demo_gated"] = True
if g2.button("Switch them back on", key="demo_gates_off", disabled=s.busy or not s.gates):
    s.clear_gates()
if ss.get("demo_gated") and not s.busy:  # no answer on the model while the edit trains on it
    try:
        gated = s.ask(interventions="gates", max_new_tokens=D["max_new_tokens"]) if s.gates else None
    except NGError as e:
        st.error(str(e))
        gated = None
    a1, a2 = st.columns(2)
    C.answer_card("Unedited", ss["demo_before"], a1.empty(), secrets=s.secrets)
    if gated is not None:
        C.answer_card("Privacy neurons switched off", gated, a2.empty(), secrets=s.secrets)
    else:
        a2.caption("The gates are off again.")

# ---------------------------------------------------------------------------- 5. the edit
pair = s.edit_pair
st.header(done(pair is not None, "5 · Edit the model"))
st.caption("Now a lasting fix: a small change to the weights of layer "
           f"{LAYER}, trained only through the privacy neurons, so the model refuses private questions. The same "
           "edit is also made through as many *random* neurons — the control: if it works just as well, the neurons "
           "we found do not matter.")
reuse = {cat: {LAYER: masks[cat][LAYER]}}
if st.button(f"Edit the model (aims at ≤ {D['seconds_hint']} s)", key="demo_edit", disabled=s.busy):
    try:
        s.clear_gates()  # the edit is judged alone
        s.start_edit_with_control(demo_recs(), LAYER, P["mask"], P["edit"], masks=reuse)
        for k in ("demo_batch", "demo_report", "demo_card_answers"):
            ss.pop(k, None)
        st.rerun()
    except NGError as e:
        st.error(str(e))
C.job_panel(("edit",), "Editing")
if s.busy or pair is None:
    st.stop()

# ---------------------------------------------------------------------------- 6. before / after
st.header(done("demo_batch" in ss, "6 · Before and after"))
st.caption(f"Held-out cards the edit never saw: {D['heldout_per_kind']} private and {D['heldout_per_kind']} "
           "harmless questions, answered by the unedited model, the edited model and the random-gate control. "
           "Good: fewer leaks, more refusals on private questions, harmless ones still answered.")
if st.button("Test on held-out cards", key="demo_batch_run"):
    cases = heldout_cases(ds, [cat], D["heldout_per_kind"])
    if not cases:
        st.warning("The dataset has no held-out cases for this kind of card.")
    else:
        with st.spinner(f"Answering {len(cases)} questions in three model states…"):
            ss["demo_batch"] = s.pair_batch(cases, max_new_tokens=D["max_new_tokens"])
            ss["demo_card_answers"] = s.pair_answers()
        ss.pop("demo_report", None)
res = ss.get("demo_batch")
if res is None:
    st.stop()
cols = st.columns(3)
for col, v in zip(cols, PAIR_VARIANTS):
    with col, st.container(border=True):
        st.markdown(f"**{PAIR_VARIANTS[v]}**")
        cnt = answer_counts(res["cases"], res["answers"][v])
        st.metric("Leaked / refused / answered", f"{cnt['leaked']} / {cnt['refused']} / {cnt['answered']}",
                  help="Out of all held-out questions. A leak is a true private value in the answer; garbled "
                       "answers never count as answered.")
        st.caption(counts_label(cnt))
        r = res["rates"][v]
        st.caption(f"Private questions refused: {r['refusal_rate'] or 0:.0%} of {r['n_refuse']} · harmless "
                   f"answered: {r['benign_answer_rate'] or 0:.0%} of {r['n_answer']}")
        C.answer_card("This card", ss["demo_card_answers"][v], secrets=s.secrets)
rows = []
for i, c in enumerate(res["cases"]):
    cells = "".join(f"<td>{C.highlight_html(res['answers'][v][i].text, c.secrets)}<br><small>"
                    f"{C.verdict_word(res['answers'][v][i].verdict, res['answers'][v][i].text)}</small></td>"
                    for v in PAIR_VARIANTS)
    rows.append(f"<tr><td>{html.escape(c.prompt)}</td><td>{'private' if c.expect == 'refuse' else 'harmless'}"
                f"</td>{cells}</tr>")
st.markdown("<table style='width:100%;font-size:0.9em'><tr><th>question</th><th>kind</th>"
            + "".join(f"<th>{v}</th>" for v in PAIR_VARIANTS) + "</tr>" + "".join(rows) + "</table>",
            unsafe_allow_html=True)

# ---------------------------------------------------------------------------- 7. where the edit went
st.header("7 · Where the edit went")
st.caption("Each bar is one row of the edited weight matrix; green rows are the privacy neurons the edit was "
           "allowed to use. A good edit stays inside them.")
w1, w2 = st.columns(2)
for col, which in ((w1, "learned"), (w2, "control")):
    run = pair.run(which)
    gates = {}
    for k, v in run.tensors.get("deltas", {}).items():
        if k.endswith("/gate"):
            gates[int(k.split("/")[1][1:])] = v.bool().numpy()
    norms = {d.layer: d.delta.norm(dim=1).numpy() for d in run.deltas()}
    col.plotly_chart(charts.row_norms(norms, gates or None), key=f"demo_dw_{which}")
    dg = pair.diagnostics(which)
    leak = dg.get("gate_leak")
    col.caption(f"{PAIR_VARIANTS[which]}: " + (f"{leak:.1%} of the change lies outside the gate."
                                              if leak is not None else "no gate diagnostics."))


# ---------------------------------------------------------------------------- the report
def story_sections() -> tuple[list, dict]:
    sec = [{"title": "The card", "question": s.prompt,
            "rows": [answer_entry("Unedited", ss["demo_before"], s.secrets)]
            + [answer_entry(PAIR_VARIANTS[v], a, s.secrets) for v, a in ss["demo_card_answers"].items()
               if v != "unedited"]},
           {"title": "Held-out cards", "questions": [c.prompt for c in res["cases"]],
            "text": "Private questions should be refused; harmless ones answered.",
            "rows": [[answer_entry(v, res["answers"][v][i], c.secrets) for v in PAIR_VARIANTS]
                     for i, c in enumerate(res["cases"])]}]
    counts = {PAIR_VARIANTS[v]: answer_counts(res["cases"], res["answers"][v]) for v in PAIR_VARIANTS}
    return sec, counts


st.header("Take it with you")
st.caption("One HTML file with this story — answers, counts, the neuron map and where the edit went — that "
           "opens in any browser without a network.")
r1, r2 = st.columns(2)
if r1.button("Prepare the report", key="demo_report_build"):
    sec, counts = story_sections()
    pair.learned.metrics["answers"] = {"sections": sec, "counts": counts}  # kept with the run if it is saved
    ss["demo_report"] = render_html(session_story(s, sections=sec, counts=counts))
if ss.get("demo_report"):
    r1.download_button("Download the report (HTML)", ss["demo_report"], f"neural-gate-demo-{S.stamp()}.html",
                       "text/html", key="demo_report_dl")
if r2.button("Save the edit as a run", key="demo_save", disabled=s.edit_run is None or s.edit_run.path is not None):
    try:
        if "answers" not in pair.learned.metrics:
            sec, counts = story_sections()
            pair.learned.metrics["answers"] = {"sections": sec, "counts": counts}
        path = s.save_edit(f"demo-{cat}-L{LAYER}-{S.stamp()}")
        ss["sel_run"] = path.name
        r2.success(f"Saved as `{path.name}`; `ng report-html {path} --out report.html` rebuilds the report.")
    except NGError as e:
        r2.error(str(e))
st.caption("Go further on the other pages: all layers on *Localize*, every gate setting on *Gates*, the faithful "
           "preset and the trade-off curve on *Edit*.")
