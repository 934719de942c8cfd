"""Page 3 — Gates: switch privacy neurons off (or scale them) and see the answer change, live."""
from __future__ import annotations

import streamlit as st

from app import components as C
from app import state as S
from app.labels import GATE_WHERE_HELP
from ng_core.errors import NGError
from ng_core.studio import GATE_ANSWER_CHOICES, GATE_ANSWER_TOKENS, neuron_view, run_units

s = S.studio()
ss = st.session_state

st.title("Gates")
st.caption("Gates scale chosen neurons of a layer while the model answers: 0 switches them off, 1 leaves them "
           "unchanged. They act only in this browser session, as hooks; the model's weights never change. "
           "The answer regenerates whenever a gate changes.")

if s.image is None and not s.prompt:
    st.info("Pick an image and a question on *Model & inputs* first; gates need something to answer.")

view = None
if s.localization is not None:
    try:
        args = dict(ss.get("gate_view_args", {}))
        if args.get("unit") not in run_units(s.localization):  # settings made for another run
            args = {}
        view = neuron_view(s.localization, **args)
    except NGError as e:
        st.warning(f"The current localization cannot be used for gates: {e}")

MODES = {
    "whole": "Whole mask — every selected neuron",
    "layers": "Per layer — the selected neurons of chosen layers",
    "topk": "Top-k — the k highest-scoring neurons per layer",
    "single": "Single neurons — type them",
}


def gate_panel() -> None:
    # A plain function, not a fragment: every change reruns the (light) page, so the sidebar's list of
    # active interventions always matches. Writing the sidebar from a fragment broke the page when users
    # switched pages quickly ("Cannot set a node at a delta path" in the browser).
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown("**Gate settings**")
        S.init("w_gates_on", ss.get("gates_on", False))
        on = st.toggle("Gates on", key="w_gates_on",
                       help="Off until you switch them on: opening this page changes nothing.")
        ss["gates_on"] = on
        modes = list(MODES) if view is not None else ["single"]
        S.init("w_gate_mode", ss.get("gate_mode", modes[0]) if ss.get("gate_mode") in modes else modes[0])
        mode = st.radio("Which neurons", modes, key="w_gate_mode", format_func=MODES.get)
        ss["gate_mode"] = mode
        if view is None:
            st.caption("Run a localization (or load a run) to gate the privacy neurons it found; until then, "
                       "type neurons by hand.")
        selection: dict[int, list[int]] = {}
        unit = view.unit if view is not None else "residual"
        if mode == "whole":
            selection = view.selection()
            st.caption(f"{sum(map(len, selection.values()))} neurons in {sum(1 for v in selection.values() if v)} "
                       f"layer(s) · rule: {view.rule}")
        elif mode == "layers":
            counts = view.counts()
            for l in view.layers:
                S.init(f"w_gl_{l}", ss.get(f"gl_{l}", True))
                v = st.checkbox(f"L{l} — {counts[l]} neurons", key=f"w_gl_{l}")
                ss[f"gl_{l}"] = v
                if v:
                    selection[l] = view.selection()[l]
        elif mode == "topk":
            S.init("w_gate_k", ss.get("gate_k", 8))
            k = st.slider("k per layer", 1, min(512, view.score.shape[1]), key="w_gate_k")
            ss["gate_k"] = k
            only = st.checkbox("Only among the selected neurons", key="w_gate_topk_sel", value=False)
            selection = view.top_per_layer(k, only_selected=only)
        else:
            S.init("w_gate_single", ss.get("gate_single", f"L{S.keep('sel_layer', s.preset.layer)}:"
                                                          f"{S.keep('sel_neuron', 0)}"))
            text = st.text_input("Neurons as L<layer>:<neuron>, comma-separated", key="w_gate_single",
                                 help="e.g. L2:5, L2:17, L3:40 (residual dims)")
            ss["gate_single"] = text
            try:
                selection = parse_neurons(text, s.model.n_layers, s.model.hidden_size)
            except ValueError as e:
                st.error(str(e))
        S.init("w_gate_scale", ss.get("gate_scale", 0.0))
        scale = st.slider("Strength: scale the gated neurons by", -1.0, 2.0, step=0.05, key="w_gate_scale",
                          help="0 = switched off; 1 = unchanged; negative values flip them.")
        ss["gate_scale"] = scale
        S.init("w_gate_where", ss.get("gate_where", "subject"))
        where = st.radio("Scope: where the gate acts", list(GATE_WHERE_HELP), key="w_gate_where",
                         format_func=lambda w: {"subject": "subject token", "all": "every position"}[w])
        ss["gate_where"] = where
        for w, h in GATE_WHERE_HELP.items():
            st.caption(f"**{'subject token' if w == 'subject' else 'every position'}**: {h}")

        gates = s.make_gates(selection, scale, where, unit, label="gate") if on else []
        try:
            s.set_gates(gates)
        except NGError as e:
            st.error(str(e))
        st.markdown("**Active interventions**")
        if s.gates or s.deltas:
            C.state_view(s, key="gates")
        else:
            st.caption("None: the gated answer equals the base answer." + ("" if on else " Switch *Gates on* to "
                                                                            "apply the settings above."))

    with right:
        if not s.prompt:
            st.info("No question yet.")
            return
        st.markdown(f"**Question:** {s.prompt}" + (f"  ·  subject: *{s.subject}*" if s.subject else ""))
        if not s.subject and any(g.where == "subject" for g in s.gates):
            st.warning("This question has no subject, so gates at the subject token do nothing. Click the word "
                       "the question is about:")
            pick = C.subject_picker(s.prompt, None, key="w_gates_subject")
            if pick:
                s.set_prompt(s.prompt, pick)
                st.rerun()
        n_tok = answer_length()
        c1, c2 = st.columns(2)
        base_slot, gated_slot = c1.empty(), c2.empty()
        try:
            base, gated = s.compare(on_token=C.streamer(gated_slot, "With the gates"),
                                    on_token_base=C.streamer(base_slot, "Without gates (base model)"),
                                    max_new_tokens=n_tok)
        except NGError as e:
            st.error(str(e))
            return
        C.answer_card("Without gates (base model)", base, base_slot, secrets=s.secrets)
        C.answer_card("With the gates" + (" and the edit" if s.deltas else ""), gated, gated_slot,
                      secrets=s.secrets)
        if base.text == gated.text:
            st.caption("The answers are identical: the gates do not change this answer.")
        else:
            st.markdown("**What changed**")
            st.markdown(C.diff_html(base.text, gated.text), unsafe_allow_html=True)


def answer_length() -> int:
    """The answers' length in new tokens: short by default so a toggle stays quick (a gate that garbles the
    answer is decoded token by token), longer on request. Said next to the answers."""
    S.init("w_gate_tokens", ss.get("gate_tokens", GATE_ANSWER_TOKENS))
    note, pick = st.columns([3, 1], vertical_alignment="bottom")
    n_tok = int(pick.selectbox("Answer length", GATE_ANSWER_CHOICES, key="w_gate_tokens",
                               format_func=lambda n: f"{n} tokens",
                               help="New tokens generated for both answers. Longer answers make each toggle "
                                    "slower when the gate changes the answer."))
    ss["gate_tokens"] = n_tok
    note.caption(f"Both answers: the first {n_tok} tokens the model generates.")
    return n_tok


def parse_neurons(text: str, n_layers: int, size: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for part in [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]:
        try:
            lay, neu = part.upper().lstrip("L").split(":")
            l, n = int(lay), int(neu)
        except ValueError:
            raise ValueError(f"cannot read {part!r}: write L<layer>:<neuron>, e.g. L2:17") from None
        if not 0 <= l < n_layers:
            raise ValueError(f"{part}: layers are 0..{n_layers - 1}")
        if not 0 <= n < size:
            raise ValueError(f"{part}: neurons are 0..{size - 1}")
        out.setdefault(l, []).append(n)
    return out


gate_panel()
