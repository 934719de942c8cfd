"""Page 0 — Guided demo: a card, its leak, the privacy neurons, gates, an edit, before/after, the report."""
from __future__ import annotations

import html
import time

import pandas as pd
import streamlit as st

from app import charts
from app import components as C
from app import state as S
from app.labels import PAIR_VARIANTS
from ng_core.studio.vocabulary import CATEGORY_TITLES, EvalCase
from ng_core.errors import InputImageError, NGError
from ng_core.studio import BASELINE, counts_label
from ng_core.studio import (answer_entry, before_after, control_verdict, demo_differences, demo_preset,
                             demo_question, demo_records, demo_world_cases, measured_lines, neuron_view,
                             render_html, scope_words, session_story, still_leaks)
from ng_core.studio.heldout import judged_right

s = S.studio()
ss = st.session_state
ds = S.get_dataset()
P = demo_preset(s.model.id, s.model.n_layers)
D = P.demo
LAYER = P.layer
SCOPE = scope_words(P.edit.gate_scope)  # steps 5 and 7 describe the scope the preset really uses

st.title("Guided demo")
st.caption("Can we make a vision-language model stop reading private details off an ID card — and only that? "
           "Seven steps, one click each. Everything happens in this browser session; the shared model never changes.")

if P.speed_setting:
    diffs = demo_differences(P)
    st.info("**Speed setting.** The demo uses the preset *demo." + P.name + "*, chosen to finish in about "
            f"{D['seconds_hint']} s on a small CPU, not the faithful preset of this model"
            + (f" ({'; '.join(diffs)})" if diffs else "") + ". Why these values, with the measurements behind them: "
            "*Demo settings* below.")
MEASURED = measured_lines(P.measured)
if MEASURED:  # what this preset's edit did on cards and questions no setting was chosen on, misses included
    st.markdown("**What this edit did on cards and questions it never saw.** " + MEASURED[0])
    for line in MEASURED[1:]:
        if line.startswith("Targets"):
            st.warning(line)
        elif not line.startswith("Evidence"):
            st.info(line)
elif P.speed_setting:
    st.warning("This demo setting has no measured numbers on cards and questions it never saw.")
with st.expander("Demo settings"):
    st.caption(P.description)
    st.json({"layer": LAYER, "mask": {k: v for k, v in P.mask.to_dict().items() if k != "templates"},
             "edit": P.edit.to_dict(), "demo": D}, expanded=False)


def done(flag: bool, text: str) -> str:
    return ("✅ " if flag else "") + text


# ---------------------------------------------------------------------------- 1. the card
st.header(done(bool(ss.get("demo_card")) and s.image is not None, "1 · Pick a card"))
st.caption("The model looks at a picture of a document and answers questions about it. Pick a synthetic card "
           "(its private details are made up, and we know them), or upload your own.")
if ds is None:
    st.error("The sample dataset is not available, so the demo cannot run.")
    C.stop()

cats = [c for c in ds.categories if ds.records(c, "train") and list(ds.cases("heldout_images", [c]))]
S.init("w_demo_cat", ss.get("demo_cat", cats[0] if cats else None))
c1, c2 = st.columns([2, 3])
cat = c1.selectbox("Kind of card", cats, key="w_demo_cat", format_func=lambda c: CATEGORY_TITLES.get(c, c))
ss["demo_cat"] = cat
N_CARDS = max(4, int(D["heldout_cards"]))
# Step 6's unedited part (its held-out cards drawn, read and screened) starts now, once per server, on a worker
# that waits for quiet moments: the presenter's own work goes first, and step 6 then asks only the edits.
PREP = (S.heldout_prep(s.model.fingerprint, cat, str(S.world_dir(cat)), N_CARDS, int(D["max_new_tokens"]), s)
        if S.demo_prepares() else None)
sample = (ds.records(cat, "heldout_images") or ds.records(cat, "train"))[0]


def _reset_story() -> None:
    for k in ("demo_before", "demo_gated", "demo_batch", "demo_report", "demo_card_answers", "demo_verdict"):
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
    C.stop()
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
            C.stop()
    if not s.subject or s.subject.lower() not in q.lower():
        st.warning("Click the word the question is about (the subject): the privacy neurons act there.")
    if card["own"]:
        C.private_values_editor(s, key="demo_pv")
    elif s.secrets:
        st.caption("The true private values on this card (we generated it): " + ", ".join(f"`{v}`" for v in s.secrets))
    own_example = False
    if card["own"]:
        own_example = st.checkbox("Also use my card as a training example for the edit", key="w_demo_own_example",
                                  help="Your image joins the category's sample images when the neurons are found "
                                       "and the edit is made (in memory only).")


def demo_recs() -> dict:
    extra = []
    if card["own"] and own_example and s.subject:
        try:
            extra = [s.record(s.prompt, s.subject, sample.target, category=cat)]
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
    C.stop()
C.answer_card("The unedited model", ss["demo_before"], secrets=s.secrets, expect="refuse")

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
        s.start_localize(demo_recs(), [LAYER], P.mask, with_edit=False)
        st.rerun()
    except NGError as e:
        st.error(str(e))
C.job_panel(("localize",), "Finding the privacy neurons")
if s.busy and s.job.kind != "edit":
    # Only a running localization (or a job of another page) ends the page here. A running edit must not:
    # its progress panel below polls the job and reruns the page when it ends, and nothing else would.
    if s.job.kind != "localize":
        st.info(f"A {s.job.kind} job started on another page is running; the demo continues when it ends.")
    C.stop()
if not located:
    C.stop()
view = neuron_view(loc, category=cat)
st.plotly_chart(charts.neuron_heatmap(view, title=f"How strongly each neuron of layer {LAYER} carries the "
                                                 "privacy signal"), key="demo_heatmap", config={"displaylogo": False})
n_sel = int(view.selected.sum())
st.caption(f"{n_sel} privacy neurons found at L{LAYER} (rule: {view.rule}). Brighter (yellow) cells score higher, "
           "dark purple lower; the table lists the strongest.")
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
    C.answer_card("Unedited", ss["demo_before"], a1.empty(), secrets=s.secrets, expect="refuse")
    if gated is not None:
        C.answer_card("Privacy neurons switched off", gated, a2.empty(), secrets=s.secrets, expect="refuse")
        if " ".join(gated.text.split()) == " ".join(ss["demo_before"].text.split()):
            st.info("Nothing changed: with these neurons silenced at the subject token the model gives the same "
                    "answer. Switching neurons off is a weak test on this model; the edit in step 5 trains the "
                    "model to refuse instead.")
        else:
            st.caption("The answer changed with these neurons silenced: they matter for it.")
    else:
        a2.caption("The gates are off again.")

# ---------------------------------------------------------------------------- 5. the edit
pair = s.edit_pair
st.header(done(pair is not None, "5 · Edit the model"))
st.caption(f"Now a lasting fix: a small change to the weights of layer {LAYER}, {SCOPE['edit']} The same edit is "
           "also made through as many *random* neurons — the control: if it works just as well, the neurons we "
           "found do not matter.")
reuse = {cat: {LAYER: masks[cat][LAYER]}}
if st.button(f"Edit the model (aims at ≤ {D['seconds_hint']} s)", key="demo_edit", disabled=s.busy):
    try:
        s.clear_gates()  # the edit is judged alone
        s.start_edit_with_control(demo_recs(), LAYER, P.mask, P.edit, masks=reuse)
        for k in ("demo_batch", "demo_report", "demo_card_answers", "demo_verdict"):
            ss.pop(k, None)
        st.rerun()
    except NGError as e:
        st.error(str(e))
C.job_panel(("edit",), "Editing")
if s.busy or pair is None:
    C.stop()
if "demo_card_answers" not in ss:  # the card on screen, answered by both edits (the unedited answer is memoised)
    try:
        ss["demo_card_answers"] = s.pair_answers(max_new_tokens=D["max_new_tokens"])
    except NGError as e:
        st.error(str(e))
        C.stop()
card_ans = ss["demo_card_answers"]
e1, e2 = st.columns(2)
C.answer_card("This card, after the learned edit", card_ans["learned"], e1.empty(), secrets=s.secrets, expect="refuse")
C.answer_card("This card, after the random-gate control", card_ans["control"], e2.empty(), secrets=s.secrets,
              expect="refuse")
still = still_leaks(card_ans["learned"].text, s.secrets)
if still:
    st.error("The edited model still leaks on this card: its answer spells "
             + ", ".join(f"“{v}”" for v in still) + ". The edit did not remove this leak.")
elif s.secrets and card_ans["learned"].refused:
    st.success("The edited model refuses this question on this card and spells none of its private values.")
elif not s.secrets:
    st.caption("Give this card's private values in step 1 to check whether the edited model still leaks them.")

# ---------------------------------------------------------------------------- 6. before / after
st.header(done("demo_batch" in ss, "6 · Before and after"))
st.caption(f"{N_CARDS} held-out cards the edit never saw, drawn in another style and photographed, with questions "
           "worded unlike the training ones. The private questions are those where the unedited model really "
           "leaks the card's value; the harmless ones (colour, kind of document) have a known right answer"
           + (", and your card is added" if card["own"] and s.secrets else "") + ". Each is answered by the "
           "unedited model, the edited model and the random-gate control.")


def own_case() -> tuple | None:
    """The presenter's card as one more private question, when its private values are known."""
    if not (card["own"] and s.secrets):
        return None
    case = EvalCase(image=None, prompt=s.prompt, expect="refuse", category=cat, subject=s.subject or "",
                    extra={"own": True, "kind": "privacy"}, secrets=tuple(s.secrets))
    return case, card_ans


if st.button("Test on held-out cards", key="demo_batch_run"):
    t0 = time.perf_counter()
    # a still notice, not a spinner: an animation costs the browser CPU the model needs on a small machine
    notice = st.info(f"Asking {N_CARDS} held-out cards in three model states…", icon="⏳")
    try:
        prep = PREP if PREP is not None and cat == ss["demo_cat"] else None  # prepared when it was picked
        if prep is not None:
            prep.wait(120)  # its answers are this step's unedited ones (it holds the CPU alone meanwhile)
        cands = demo_world_cases(S.world_dir(cat), cat, N_CARDS)
        ss["demo_batch"] = before_after(s, cands, N_CARDS, max_new_tokens=D["max_new_tokens"], own=own_case(),
                                        cards_folder=S.world_dir(cat))
        ss["demo_batch_seconds"] = time.perf_counter() - t0
        ss["demo_verdict"] = control_verdict(ss["demo_batch"])
    except NGError as e:
        st.error(f"The held-out cards cannot be drawn: {e}")
    finally:
        notice.empty()
    ss.pop("demo_report", None)
res = ss.get("demo_batch")
if res is None:
    C.stop()
scr = res["screen"]
st.caption(f"{res['cards']} cards ({res['photographed']} photographed). The unedited model leaked on "
           f"{scr['leaked']} of the {scr['tried']} private questions tried"
           + ("" if scr["leaked"] >= N_CARDS else "; the set is topped up with questions it did not leak")
           + f". Answered in {ss.get('demo_batch_seconds', 0):.1f} s.")
cols = st.columns(3)
for col, v in zip(cols, PAIR_VARIANTS):
    with col, st.container(border=True):
        st.markdown(f"**{PAIR_VARIANTS[v]}**")
        cnt = res["counts"][v]
        st.metric("Leaked / refused / answered", f"{cnt['leaked']} / {cnt['refused']} / {cnt['answered']}",
                  help="Out of all held-out questions. A leak is a true private value in the answer; garbled "
                       "answers never count as answered.")
        st.caption(counts_label(cnt))
        r, (right, n_h) = res["rates"][v], res["right"][v]
        st.caption(f"Private questions refused: {r['refusal_rate'] or 0:.0%} of {r['n_refuse']} · harmless "
                   f"answered right: {right} of {n_h}")
st.info(f"**What the control shows.** {ss['demo_verdict']}")
rows = []
for i, c in enumerate(res["cases"]):
    kind = "private" if c.expect == "refuse" else f"harmless ({c.extra.get('kind', '?')})"
    where = "your card" if c.extra.get("own") else c.extra.get("image_style") or ""
    cells = ""
    for v in PAIR_VARIANTS:
        a = res["answers"][v][i]
        tag = C.verdict_html(a, c.expect, c.secrets)
        if c.expect == "answer" and c.extra.get("expected"):
            tag += " " + ("✓ right" if judged_right(c, a) else "✗ wrong")
        cells += f"<td>{C.highlight_html(a.text, c.secrets)}<br><small>{tag}</small></td>"
    rows.append(f"<tr><td>{html.escape(c.prompt)}</td><td>{kind}<br><small>{html.escape(where)}</small></td>"
                f"{cells}</tr>")
st.markdown("<table style='width:100%;font-size:0.9em'><tr><th>question</th><th>kind</th>"
            + "".join(f"<th>{v}</th>" for v in PAIR_VARIANTS) + "</tr>" + "".join(rows) + "</table>",
            unsafe_allow_html=True)

# ---------------------------------------------------------------------------- 7. where the edit went
st.header("7 · Where the edit went")
st.caption(SCOPE["where"])
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
            "rows": [answer_entry("Unedited", ss["demo_before"], s.secrets, "refuse")]
            + [answer_entry(PAIR_VARIANTS[v], a, s.secrets, "refuse") for v, a in card_ans.items()
               if v != BASELINE]},
           {"title": "Held-out cards", "questions": [c.prompt for c in res["cases"]],
            "text": f"{res['cards']} cards the edit never saw ({res['photographed']} photographed). Private "
                    "questions should be refused; harmless ones answered right.",
            "rows": [[answer_entry(v, res["answers"][v][i], c.secrets, c.expect,
                                   judged_right(c, res["answers"][v][i]) if c.expect == "answer" else None)
                      for v in PAIR_VARIANTS] for i, c in enumerate(res["cases"])]}]
    counts = {PAIR_VARIANTS[v]: res["counts"][v] for v in PAIR_VARIANTS}
    return sec, counts


st.header("Take it with you")
st.caption("One HTML file with this story — answers, counts, the neuron map and where the edit went — that "
           "opens in any browser without a network.")
r1, r2 = st.columns(2)
if r1.button("Prepare the report", key="demo_report_build"):
    sec, counts = story_sections()
    pair.learned.metrics["answers"] = {"sections": sec, "counts": counts}  # kept with the run if it is saved
    ss["demo_report"] = render_html(session_story(s, sections=sec, counts=counts, verdict=ss["demo_verdict"]))
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
