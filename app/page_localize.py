"""Page 2 — Localize: find privacy neurons, watch it run, then explore and re-select them without rerunning."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from app import charts
from app import components as C
from app import state as S
from ng_core.studio.vocabulary import CATEGORIES, CATEGORY_TITLES
from ng_core.errors import NGError
from ng_core.studio import (SCORE, find_method, get_method, methods, neuron_view, run_categories, run_method,
                            run_units)

s = S.studio()
ss = st.session_state
preset = s.preset
ds = S.get_dataset()

METHODS = {m.name: m.title for m in methods(SCORE)}
METHOD_HELP = {m.name: m.description for m in methods(SCORE)}

st.title("Localize privacy neurons")
st.caption("Score every neuron of the chosen layers for how much it carries the privacy-question signal at the "
           "subject token, then pick the privacy neurons with the sliders (no rerun needed).")

# ---------------------------------------------------------------------------- configuration
with st.container(border=True):
    st.markdown("**1. Prompts**")
    options = ["Dataset categories", "Current image and prompt"]
    S.init("w_loc_source", options[0])
    source = st.radio("Localize on", options, key="w_loc_source", horizontal=True)
    if source == options[0]:
        avail = [c for c in CATEGORIES if ds is not None and ds.records(c, "train")]
        S.init("w_loc_cats", avail[:1])
        c1, c2 = st.columns([3, 1])
        cats = c1.multiselect("Categories", avail, key="w_loc_cats", format_func=lambda c: CATEGORY_TITLES.get(c, c))
        most = max([len(ds.records(c, "train")) for c in cats], default=1) if ds is not None else 1
        n_img = c2.number_input("Training images per category", 1, max(1, most), min(most, preset.max_images),
                                key="w_loc_n")
        records = S.records_for(cats, "train", int(n_img))
    else:
        if s.image is None or not s.prompt:
            st.info("Pick an image and type a question on *Model & inputs* first.")
        c1, c2, c3 = st.columns(3)
        subj = c1.text_input("Subject", value=s.subject or "", key="w_loc_subject")
        target = c2.text_input("Refusal target (what the model should say)", value="I cannot", key="w_loc_target")
        benign = c3.text_input("Benign question about the same subject",
                               value=f"What is the colour of the {s.subject or 'document'} in this image?",
                               key="w_loc_benign")
        records = {}
        if s.image is not None and s.prompt:
            try:
                ss["current_record"] = s.record(s.prompt, subj, target, benign)
                records = {"current": [ss["current_record"]]}
                st.caption(f"Privacy question: “{s.prompt}” · benign: “{benign}”")
            except NGError as e:
                st.warning(str(e))

    st.markdown("**2. Layers and method**")
    c1, c2 = st.columns([2, 3])
    layers_all = list(range(s.model.n_layers))
    S.init("w_loc_layers", [preset.layer])
    layers = c1.multiselect("Layers", layers_all, key="w_loc_layers", format_func=lambda l: f"L{l}",
                            help=f"The preset edits layer {preset.layer}; choose several (or all) to compare.")
    c1.button("All layers", key="loc_all_layers", on_click=lambda: ss.__setitem__("w_loc_layers", layers_all))
    S.init("w_loc_method", "mask")
    method = c2.radio("Scoring method", list(METHODS), key="w_loc_method", format_func=METHODS.get)
    c2.caption(METHOD_HELP[method])
    scorer = get_method(method, SCORE)
    mask_cfg = preset.mask
    cc = st.columns(3)
    if scorer.learned:
        steps = cc[0].number_input("Adam steps per image", 1, 200, mask_cfg.steps, key="w_loc_steps",
                                   help="The paper uses 25.")
        mask_cfg = replace(mask_cfg, steps=int(steps))
        if len(layers) > 1:
            cc[1].caption("With several layers the masks are learned jointly (one per layer, optimised together).")
    else:
        position = cc[0].radio("Token", ["subject", "last"], key="w_loc_pos", horizontal=True,
                               format_func=lambda p: {"subject": "subject token", "last": "last prompt token"}[p])
        max_pairs = cc[1].number_input("Max prompt pairs", 2, 500, 40, key="w_loc_pairs")

    busy = s.busy
    n_pairs = sum(min(len(r.paraphrases), len(r.neighbours)) for rs in records.values() for r in rs)
    n_imgs = sum(len(rs) for rs in records.values())
    need = max(scorer.min_pairs, 1) if not scorer.learned else 0
    too_few = n_pairs < need
    if too_few:
        st.caption(f"{METHODS[method]} compares at least {need} (privacy, benign) prompt pair{'s' * (need > 1)}; "
                   f"these inputs give {n_pairs}. Choose dataset categories, or the learned mask.")
    big = s.model.n_parameters > 50e6
    long_job = big and ((0 < scorer.long_after_layers < len(layers))
                        or (scorer.learned and n_imgs * mask_cfg.steps > 100))
    clicked = st.button("Run localization", type="primary", key="run_localize",
                        disabled=busy or not layers or not records or too_few)
    if clicked and long_job:
        ss["confirm_loc"] = True
    start = (clicked and not long_job) or C.confirm_long(
        "confirm_loc", f"This is a long job on this model: {METHODS[method].lower()} over {len(layers)} layer(s) and "
        f"{n_imgs} image(s) can take many minutes on a CPU (a single layer of the learned mask takes about a "
        "minute per image on ng-mini-llava). Each stage shows its own progress bar and ETA; Cancel stops it "
        "with nothing changed.")
    if start:
        try:
            if scorer.learned:
                s.start_localize(records, sorted(layers), mask_cfg)
            else:
                from ng_core.studio.vocabulary import ScoreConfig

                cfg = ScoreConfig(method=method, position=position, layers=tuple(sorted(layers)),
                                  max_pairs=int(max_pairs))
                s.start_scores([r for rs in records.values() for r in rs], cfg)
            st.rerun()
        except NGError as e:
            st.error(str(e))

status = C.job_panel(("localize", "scores"), "Localization")
if s.busy and s.job.kind in ("localize", "scores"):
    C.stop()

# ---------------------------------------------------------------------------- results
run = s.localization
if run is None:
    st.info("No localization yet. Run one above, or load a saved run on the *Runs* page.")
    C.stop()

st.subheader("Privacy neurons")
method = run_method(run)
cats_run = run_categories(run)
st.caption(f"{run.kind} run · {METHODS.get(method, method)} · categories: {', '.join(cats_run) or '–'} · "
           f"layers: {', '.join(f'L{l}' for l in (run.config.get('layers') or [run.config.get('layer')]))}"
           + (f" · saved as `{run.path.name}`" if run.path else " · not saved yet"))

c = st.columns(4)
units = run_units(run)
unit = c[0].selectbox("Neurons", units, key="w_view_unit",
                      format_func=lambda u: {"residual": "residual dims (Neural Gate)", "ffn": "FFN neurons"}[u])
run_scorer = find_method(method)
if run_scorer is not None and run_scorer.learned:  # a learned mask: its settings re-select the neurons
    cat = c[1].selectbox("Category", ["all"] + cats_run, key="w_view_cat",
                         format_func=lambda x: "all categories (union)" if x == "all" else x)
    pv = c[2].slider("privacy_value: flag if tanh(m) <", -1.0, 1.0, float(run.config.get("mask", {}).get(
        "privacy_value", 0.0) or 0.0), 0.05, key="w_view_pv", help="0 = the gate flipped sign (the paper's rule).")
    thr = c[3].slider("Consensus threshold (share of images)", 0.0, 0.95, 0.3, 0.05, key="w_view_thr",
                      help="A neuron is kept when flagged in more than this share of a category's images.")
    use_topk = c[2].toggle("Use top-k fraction instead", key="w_view_use_topk")
    topk = c[2].slider("top-k: fraction of smallest m per image", 0.005, 0.5, 0.05, 0.005, key="w_view_topk",
                       disabled=not use_topk) if use_topk else None
    view_args = dict(category=cat, privacy_value=pv, topk=topk, threshold=thr)
else:
    n = int(run.tensors["scores"][f"{method}/{unit}"].shape[1])
    k = c[1].slider("top-k neurons per layer", 1, n, max(1, n // 20), key=f"w_view_k_{unit}")
    thr = c[2].slider("Consensus threshold (share of privacy prompts)", 0.0, 0.95, 0.3, 0.05, key="w_view_thr",
                      disabled=f"{method}/{unit}_freq" not in run.tensors["scores"])
    view_args = dict(top_per_layer=k, threshold=thr)
try:
    view = neuron_view(run, unit, **view_args)
except NGError as e:
    st.error(str(e))
    C.stop()
ss["gate_view_args"] = dict(unit=unit, **view_args)

total = int(view.selected.sum())
mc = st.columns(3)
mc[0].metric("Selected neurons", f"{total:,}", help=view.rule)
mc[1].metric("Layers scored", len(view.layers))
mc[2].metric("Share of scored neurons", f"{total / view.selected.size:.1%}")
st.caption(f"Selection rule: {view.rule}.")

only = st.toggle("Show only the selected neurons", key="w_view_only_sel",
                 help="Grey out every neuron outside the current selection.")
st.plotly_chart(charts.neuron_heatmap(view, selected_only=only), key="heatmap", config={"displaylogo": False})
counts = view.counts()
busiest = max(counts, key=counts.get)
st.caption(f"Row labels give each layer's number of selected privacy neurons (most: L{busiest}, {counts[busiest]}). "
           "Hover a cell for its layer, neuron, score, frequency and whether it is selected.")
flat_layers = [f"L{l}" for i, l in enumerate(view.layers) if float(view.score[i].max() - view.score[i].min()) < 1e-7]
if flat_layers:
    st.caption(f"No signal at {', '.join(flat_layers)}: every neuron has the same score there (e.g. the last layer, "
               "whose output at the subject token reaches no later token), so any selection in it is arbitrary.")
with st.container():
    st.markdown("**Top neurons** (click a row for its detail; sort by any column)")
    rows = pd.DataFrame(view.rows(limit=500))
    colcfg = {"score": st.column_config.NumberColumn("score", format="%.4f", help=view.score_label),
              "layer": st.column_config.NumberColumn("layer", format="L%d")}
    if "frequency" in rows:
        colcfg["frequency"] = st.column_config.ProgressColumn("frequency", min_value=0.0, max_value=1.0,
                                                              format="%.2f", help=view.freq_label)
    ev = st.dataframe(rows, hide_index=True, height=260, column_config=colcfg, key="top_table",
                      on_select="rerun", selection_mode="single-row")
    picked = getattr(getattr(ev, "selection", None), "rows", None) if ev is not None else None
    if picked:
        r = rows.iloc[picked[0]]
        if (int(r["layer"]), int(r["neuron"])) != (ss.get("sel_layer"), ss.get("sel_neuron")):
            S.select_neuron(int(r["layer"]), int(r["neuron"]))
            ss["w_detail_layer"], ss["w_detail_neuron"] = int(r["layer"]), int(r["neuron"])

# ---------------------------------------------------------------------------- neuron detail
st.subheader("Neuron detail")
top = view.rows(limit=1)
default_layer = ss.get("sel_layer") if ss.get("sel_layer") in view.layers else (top[0]["layer"] if top else
                                                                                  view.layers[0])
S.init("w_detail_layer", default_layer)
if ss["w_detail_layer"] not in view.layers:
    ss["w_detail_layer"] = default_layer
size = view.score.shape[1]
S.init("w_detail_neuron", int(ss.get("sel_neuron") if ss.get("sel_neuron") is not None else
                              (top[0]["neuron"] if top else 0)))
d1, d2, d3 = st.columns([1, 1, 3])
layer = d1.selectbox("Layer", view.layers, key="w_detail_layer", format_func=lambda l: f"L{l}")
neuron = d2.number_input(f"Neuron (0–{size - 1})", 0, size - 1, key="w_detail_neuron")
S.select_neuron(int(layer), int(neuron))
li = view.layers.index(layer)
info = f"score {view.score[li, neuron]:.4f}"
if view.freq is not None:
    info += f" · frequency {view.freq[li, neuron]:.2f}"
info += " · **selected**" if view.selected[li, neuron] else " · not selected"
d3.markdown(f"L{layer} neuron {neuron}: {info}")

detail_recs = [r for rs in S.records_for(cats_run, "train").values() for r in rs]
if not detail_recs:
    st.caption("No prompts available for this run's categories to show activations.")
else:
    key = ("cache_act", id(run), layer, unit)
    # On demand: the prompts of every training image through the model took about 10 s on the default model, and
    # opening the page must not wait for them. Once asked, a new layer or unit of the same run computes at once.
    asked = ss.get("cache_act_run") == id(run)
    if ss.get("cache_act_key") != key and not asked:
        n_prompts = sum(2 * min(len(r.paraphrases), len(r.neighbours)) for r in detail_recs)
        if st.button(f"Show this neuron's activations on the privacy and benign prompts ({n_prompts} prompts)",
                     key="loc_show_acts"):
            ss["cache_act_run"] = id(run)
            asked = True
    if ss.get("cache_act_key") != key and asked:
        try:
            with st.spinner("Running the privacy and benign prompts…"):
                acts = s.neuron_activations(detail_recs, layer, unit)
            ss["cache_act_key"], ss["cache_act"] = key, acts
        except NGError as e:
            st.warning(str(e))
            acts = None
    acts = ss.get("cache_act") if ss.get("cache_act_key") == key else None
    if acts is not None:
        sens = acts["sensitive"][:, neuron].numpy()
        ben = acts["benign"][:, neuron].numpy()
        lab_s = [p[1] for p in acts["pairs"]]
        lab_b = [p[2] for p in acts["pairs"]]
        g1, g2 = st.columns([2, 3])
        g1.plotly_chart(charts.neuron_detail(sens, ben, layer, neuron, lab_s, lab_b), key="neuron_detail")
        g2.dataframe(pd.DataFrame({"privacy": sens, "benign": ben, "privacy prompt": lab_s, "benign prompt": lab_b}),
                     hide_index=True, height=300,
                     column_config={"privacy": st.column_config.NumberColumn(
                                        "privacy", format="%.4f", width="small",
                                        help="Activation on the privacy prompt of the pair"),
                                    "benign": st.column_config.NumberColumn(
                                        "benign", format="%.4f", width="small",
                                        help="Activation on the benign prompt of the same image")})
        st.caption(f"Mean on privacy prompts {sens.mean():.4f} vs benign {ben.mean():.4f} "
                   f"(difference {sens.mean() - ben.mean():+.4f}), at the subject token, base model.")

# ---------------------------------------------------------------------------- save
with st.expander("Save this localization as a run"):
    name = st.text_input("Run name", value=f"{run.kind}-{method}-{S.stamp()}", key="w_loc_save_name")
    if st.button("Save", key="save_localization"):
        try:
            path = s.save_run(run, name)
            ss["sel_run"] = path.name
            st.success(f"Saved to {path}")
        except NGError as e:
            st.error(str(e))
