"""Page 5 — Evaluate: refusal and benign-answer rates per category and split, for several model states."""
from __future__ import annotations

import html
import json

import pandas as pd
import streamlit as st

from app import charts
from app import components as C
from app import state as S
from ng_core.errors import NGError
from ng_core.studio import get_method
from ng_core.studio.private_values import card_case

s = S.studio()
ss = st.session_state
ds = S.get_dataset()

st.title("Evaluate")
st.caption("Ask held-out privacy questions (the model should refuse) and benign questions (it should answer) under "
           "several model states, judge each answer, and compare the rates per category and split.")

def variant_title(v: str) -> str:
    """A model state's title: the session's states, the system-prompt defence (its method's title), a saved run."""
    return {"base": "base model", "system_prompt": f"{get_method('system_prompt').title.lower()} (base model)",
            "edit": "this session's edit", "gates": "this session's gates"}.get(v, v.replace("run:", "saved run "))


if ds is None:
    C.stop()

from ng_core.studio.vocabulary import SPLIT_DESCRIPTIONS  # noqa: E402

with st.container(border=True):
    splits = list(ds.splits)
    S.init("w_ev_splits", [x for x in ("heldout_images", "benign_controls") if x in splits] or splits[:1])
    chosen = st.multiselect("Splits", splits, key="w_ev_splits")
    for sp in chosen:
        st.caption(f"**{sp}** — {SPLIT_DESCRIPTIONS.get(sp, '')}")
    cats = st.multiselect("Categories (empty = all)", ds.categories, key="w_ev_cats")
    n = st.slider("Cases per split and category (at most)", 1, 20, 4, key="w_ev_n",
                  help="Privacy and benign cases are balanced; larger numbers take longer.")
    variants = ["base", "system_prompt"] + (["edit"] if s.deltas else []) + (["gates"] if s.gates else [])
    saved = [r["name"] for r in s.runs() if r["kind"] == "edit" and not r["error"]]
    opts = variants + [f"run:{x}" for x in saved]
    S.init("w_ev_variants", ["base"] + [v for v in ("edit", "gates") if v in variants])
    ss["w_ev_variants"] = [v for v in ss["w_ev_variants"] if v in opts] or ["base"]
    picked = st.multiselect("Model states to compare", opts, key="w_ev_variants", format_func=variant_title)
    c1, c2 = st.columns(2)
    n_tok = c1.number_input("Answer length (new tokens)", 8, 256, 32, key="w_ev_tokens")
    nll = c2.toggle("Also score likelihoods (refusal margin, ΔNLL; slower)", key="w_ev_nll")
    cases = []
    for sp in chosen:
        for cat in (cats or ds.categories):
            cs = ds.cases(sp, cat)
            ref = [c for c in cs if c.expect == "refuse"][: (n + 1) // 2]
            ans = [c for c in cs if c.expect == "answer"][: n - len(ref)] if ref else [c for c in cs if c.expect == "answer"][:n]
            cases += ref + ans
    own = card_case(s)
    if own is not None and st.checkbox("Also the current card and question, with its private values",
                                       value=True, key="w_ev_card",
                                       help="Its leaks are counted like those of the generator's cards; the image "
                                            "and values stay in this session."):
        cases = [own] + cases
    st.caption(f"{len(cases)} cases × {len(picked)} state(s) = {len(cases) * len(picked)} answers.")
    if st.button("Run evaluation", type="primary", key="run_eval", disabled=s.busy or not cases):
        try:
            runs = {v: s.load_run(v.split(":", 1)[1], apply=False) for v in picked if v.startswith("run:")}
            s.start_evaluate(cases, picked, max_new_tokens=int(n_tok), runs=runs, nll=nll)
            st.rerun()
        except NGError as e:
            st.error(str(e))

status = C.job_panel(("evaluate",), "Evaluation")
if s.busy and s.job.kind == "evaluate":
    C.stop()
if status == "done" and s.job.result is not None and ss.get("eval_job") != id(s.job):
    ss["eval_job"] = id(s.job)
    ss["eval_result"] = s.job.result

res = ss.get("eval_result")
if not res:
    st.info("No evaluation results yet in this session.")
    C.stop()

st.subheader("Results")
overall = pd.DataFrame([{"model state": variant_title(v), "leak rate": r.get("leak_rate_on_refuse"),
                         "privacy questions with true values": r.get("n_secret", 0), "privacy questions": r["n_refuse"],
                         "refusal rate": r["refusal_rate_on_refuse"],
                         "keyword leak after refusal": r.get("refusal_leak_rate_on_refuse"),
                         "benign questions": r["n_answer"], "answer rate": r["answer_rate_on_answer"],
                         "locality agreement": r["locality_agreement"]}
                        for v, r in res["results"].items()])
pct = st.column_config.NumberColumn(format="percent")
st.dataframe(overall, hide_index=True, column_config={c: pct for c in ("leak rate", "refusal rate",
                                                                     "keyword leak after refusal", "answer rate",
                                                                     "locality agreement")})
st.caption("Leak rate: share of privacy answers that spell a true private value drawn on their image (exact, after "
           "normalising case, spaces and punctuation; only questions whose image records its true values count; "
           "empty when none does). Refusal rate: share of privacy questions the keyword judge calls refusals. "
           "Answer rate: share of benign questions answered (not refused, not empty). Locality agreement: benign "
           "answers whose first words equal the base model's.")


def rate_table(metric: str, count: str) -> pd.DataFrame:
    out = []
    for v, r in res["results"].items():
        for split, cats in r["by_split_category"].items():
            for cat, m in cats.items():
                if m.get(count) and m.get(metric) is not None:
                    out.append({"variant": variant_title(v), "split": split, "category": cat, "rate": m[metric],
                                "n": m[count]})
    return pd.DataFrame(out, columns=["variant", "split", "category", "rate", "n"])


t0 = rate_table("leak_rate", "n_secret")
t1 = rate_table("refusal_rate", "n_refuse")
t2 = rate_table("answer_rate", "n_answer")
if not t0.empty:
    st.plotly_chart(charts.rates_chart(t0, "Leak rate: privacy answers spelling a true private value, per split and "
                                           "category (lower is better)"), key="rates_leak")
if not t1.empty:
    st.plotly_chart(charts.rates_chart(t1, "Refusal rate on privacy questions, per split and category (higher is "
                                           "better)"), key="rates_refuse")
if not t2.empty:
    st.plotly_chart(charts.rates_chart(t2, "Answer rate on benign questions, per split and category (higher is "
                                           "better)"), key="rates_answer")

df = pd.DataFrame(res["rows"])
leaky = [r for r in res["rows"] if r.get("leaked") is not None]
if leaky:
    n_leak = sum(bool(r["leaked"]) for r in leaky)
    with st.expander(f"Privacy answers with their true values highlighted ({n_leak} of {len(leaky)} leak)",
                     expanded=bool(n_leak)):
        shown = sorted(leaky, key=lambda r: not r["leaked"])[:200]
        body = "".join(
            f"<tr><td>{html.escape(variant_title(r['variant']))}</td><td>{html.escape(r['category'])}</td>"
            f"<td>{html.escape(r['prompt'])}</td><td>{C.highlight_html(r['answer'], r['secrets'])}</td>"
            f"<td>{'leaked' if r['leaked'] else 'no'}</td><td>{'refused' if r['refused'] else 'answered'}</td></tr>"
            for r in shown)
        st.markdown("<table style='width:100%;font-size:0.9em'><tr><th>model state</th><th>category</th>"
                    "<th>question</th><th>answer</th><th>leak</th><th>keyword judge</th></tr>" + body + "</table>",
                    unsafe_allow_html=True)
        if len(leaky) > len(shown):
            st.caption(f"The first {len(shown)} shown (leaks first); every answer is in the exports below.")
with st.expander(f"Every answer ({len(df)})"):
    cols = [c for c in ("variant", "split", "category", "expect", "prompt", "answer", "leaked", "leaks", "refused",
                        "matched", "leak", "ok") if c in df]
    st.dataframe(df[cols], hide_index=True, column_config={"leak": st.column_config.CheckboxColumn(
        "keyword leak", help="The keyword judge's guess: a refusal followed by private-looking text.")})
e1, e2 = st.columns(2)
e1.download_button("Export CSV (one row per answer)", df.to_csv(index=False).encode(), file_name="evaluation.csv",
                   mime="text/csv", key="export_csv")
e2.download_button("Export JSON (full results)", json.dumps(res["results"], indent=1, default=str).encode(),
                   file_name="evaluation.json", mime="application/json", key="export_json")
