"""Page 1 — Model & inputs: the model, an image (upload or synthetic sample), a prompt, the answer."""
from __future__ import annotations

import streamlit as st

from app import components as C
from app import state as S
from ng_core.studio.vocabulary import CATEGORY_TITLES
from ng_core.errors import InputImageError, NGError
from ng_core.studio.vocabulary import block_colour, block_lines
from ng_core.studio import CURRENT, guess_subject, question_words

DEFAULT_PROMPT = "What is the passport number of the passport in this image?"

s = S.studio()
ss = st.session_state

st.title("Model & inputs")
st.caption("Pick the model, give it an image and a question, and read its answer. Uploaded images stay in this "
           "browser session's memory only and are never written to disk.")

# ---------------------------------------------------------------------------- model
st.subheader("Model")
choices = list(dict.fromkeys([S.default_model(), "ng-mini-llava", "tiny-random", "folder"]))
current = S.model_spec()
idx = choices.index(current) if current in choices else choices.index("folder")
c1, c2 = st.columns([2, 3])


def _on_choice():
    if ss["w_model_choice"] != "folder":
        S.set_model_spec(ss["w_model_choice"])


def _on_folder():
    folder = (ss.get("w_model_folder") or "").strip()
    if folder:
        S.set_model_spec(folder)


S.init("w_model_choice", choices[idx])
if ss["w_model_choice"] not in choices:
    ss["w_model_choice"] = choices[idx]
choice = c1.selectbox("Model", choices, key="w_model_choice", on_change=_on_choice,
                      format_func=lambda c: S.MODEL_CHOICES.get(c, c) + (" (NG_MODEL)" if c == S.default_model()
                                                                        and c != "folder" else ""),
                      help="The model is loaded once and shared by every session; gates and edits stay per session.")
if choice == "folder":
    S.init("w_model_folder", current if current not in choices else "")
    folder = c2.text_input("Checkpoint folder on this machine (LLaVA-1.5/NeXT/OneVision, Qwen2-VL, Qwen2.5-VL, "
                           "Qwen3-VL, Gemma 3, InternVL3, SmolVLM, Idefics3, Mistral3)", placeholder="/models/llava-1.5-7b-hf",
                           key="w_model_folder")
    c2.button("Load this folder", key="load_folder", disabled=not folder, on_click=_on_folder)

info = s.model_info()
m = st.columns(4)
m[0].metric("Parameters", f"{info['parameters'] / 1e6:.1f} M" if info["parameters"] >= 1e5
            else f"{info['parameters']:,}")
m[1].metric("Decoder layers", info["layers"])
m[2].metric("Neurons per layer", info["hidden_size"], help="Residual-stream dims: Neural Gate's neurons "
            "(the rows of each layer's down_proj).")
m[3].metric("FFN size", info["ffn_size"], help="down_proj inputs (the KN/DEPN neurons).")
m = st.columns(4)
m[0].metric("Image tokens", info["image_tokens"], help="Visual tokens the image becomes in the prompt.")
m[1].metric("Weights in memory", S.fmt_bytes(info["weights_bytes"]), help=f"dtype {info['dtype']}")
m[2].metric("Process memory", S.fmt_bytes(info["process_rss_bytes"]), help="Resident memory of the server process.")
m[3].metric("Weights dtype", info["dtype"].replace("torch.", ""))
st.caption(f"`{info['model']}` · source: {info['source'] or 'built in memory'} · fingerprint `{info['fingerprint']}`")
if "family" in info:
    checks = " · ".join(f"{what}: {'yes' if ok else 'not yet'}" for what, ok in info["verified"].items())
    st.caption(f"Family: **{info['family_name']}** (`{info['family']}`). Verified for this family — {checks}.")

# ---------------------------------------------------------------------------- image
st.subheader("Image")
left, right = st.columns([3, 2])
with left:
    ukey = f"w_upload_{ss.get('upload_gen', 0)}"
    up = st.file_uploader("Upload an image (PNG, JPG or WebP; at most 25 MB and 40 megapixels)",
                          type=["png", "jpg", "jpeg", "webp"], key=ukey)
    if up is not None and ss.get("upload_id") != up.file_id:
        ss["upload_id"] = up.file_id
        try:
            s.set_image(up.getvalue(), name=up.name, private=True)
            for k in ("upload_error", "cache_answer", "sample_record"):  # an upload is no sample: no record
                ss.pop(k, None)
        except InputImageError as e:
            ss["upload_error"] = f"{up.name}: {e}"
    if ss.get("upload_error"):
        st.error(f"This file cannot be used: {ss['upload_error']}")
with right:
    if s.image is not None:
        st.image(s.image, caption=f"Current image: {s.image_name} ({s.image.size[0]}×{s.image.size[1]} px)",
                 width=220)
        read = block_lines(s.reading)
        if s.model.reads:
            with st.expander(f"What the model read ({len(read)} line{'s' if len(read) != 1 else ''}, OCR)",
                             expanded=bool(read)):
                colour = block_colour(s.reading)
                st.caption("This model reads the text in its images with an OCR (RapidOCR)"
                           + (" and is told the colour measured behind it" if colour else "")
                           + "; this block goes into its prompt before your question, exactly as shown.")
                st.code(s.reading or "(no text found)", language=None)
        if ss.get("sample_record") is None:  # an upload: only the presenter knows what is private on it
            C.private_values_editor(s, key="model_pv")
        if st.button("Clear image", key="clear_image", help="Forget the image in this session."):
            s.clear_image()
            ss["upload_gen"] = ss.get("upload_gen", 0) + 1
            for k in ("upload_id", "upload_error", "cache_answer", "sample_record"):
                ss.pop(k, None)
            st.rerun()
    else:
        st.info("No image yet: upload one or pick a synthetic sample below.")

ds = S.get_dataset()
if ds is not None:
    with st.expander("Sample gallery — synthetic privacy images (generated, no real person)", expanded=s.image is None):
        cats = ds.categories
        cols = st.columns(5)
        for i, cat in enumerate(cats):
            recs = ds.records(cat)
            if not recs:
                continue
            rec = recs[0]
            with cols[i % 5]:
                st.image(str(rec.image), caption=CATEGORY_TITLES.get(cat, cat), width="stretch")
                if st.button("Use", key=f"use_{cat}", width="stretch"):
                    s.set_image(rec.image, name=f"{cat} sample", private=False)
                    s.set_secrets(rec.secrets)  # the true values drawn on it: leaks are highlighted
                    prompt = rec.paraphrases[0] if rec.paraphrases else (rec.neighbours[0] if rec.neighbours else "")
                    s.set_prompt(prompt, rec.subject)
                    ss["w_prompt"], ss["w_subject"] = prompt, rec.subject
                    ss["sample_record"] = rec
                    ss.pop("cache_answer", None)
                    st.rerun()

# ---------------------------------------------------------------------------- prompt and answer
st.subheader("Prompt")
S.init("w_prompt", s.prompt or DEFAULT_PROMPT)
S.init("w_subject", s.subject or guess_subject(st.session_state["w_prompt"]) or "")
rec = ss.get("sample_record")
if rec is not None:
    sugg = [f"privacy: {p}" for p in rec.paraphrases] + [f"benign: {p}" for p in rec.neighbours]

    def _use_suggestion():
        v = ss.get("w_suggest")
        if v:
            ss["w_prompt"] = v.split(": ", 1)[1]
            _prompt_changed()

    st.selectbox("Questions from the sample's record", [""] + sugg, key="w_suggest", on_change=_use_suggestion,
                 format_func=lambda x: x or "— pick a privacy or benign question —")
pc, sc = st.columns([4, 1])


def _prompt_changed():
    """Keep the subject in step with the question: guess it again when the old one is no longer in it."""
    p, subj = ss.get("w_prompt") or "", ss.get("w_subject") or ""
    if not subj or subj.lower() not in p.lower():
        ss["w_subject"] = guess_subject(p) or ""


prompt = pc.text_area("Question about the image", key="w_prompt", height=80, on_change=_prompt_changed)
subject = sc.text_input("Subject", key="w_subject",
                        help="The words the question is about (e.g. 'passport'). Neural Gate acts at the last "
                             "token of the subject.")
words = question_words(prompt)
if ss.get("w_subject_pick") not in words:
    ss.pop("w_subject_pick", None)


def _pick_subject():
    if ss.get("w_subject_pick"):
        ss["w_subject"] = ss["w_subject_pick"]


if words:
    st.pills("…or click the subject in the question", words, key="w_subject_pick", on_change=_pick_subject,
             help="Neural Gate acts at the last token of the subject; a question without one cannot be gated there.")
if not (subject or "").strip():
    st.warning("No subject: gates at the subject token and edits will do nothing for this question. Click the word "
               "the question is about.")
if prompt != s.prompt or (subject or None) != s.subject:
    try:
        s.set_prompt(prompt, subject.strip() or None)
    except NGError as e:  # refused as typed (not valid text, or longer than the model's context)
        st.error(str(e))
        C.stop()
if subject and subject.lower() not in prompt.lower():
    st.warning(f"The subject “{subject}” does not occur in the question; gates at the subject token will do nothing.")

active = s.active_interventions()
label = "Get answer" + (" (with active interventions)" if active else "")
go = st.button(label, type="primary", key="ask", disabled=not prompt.strip())
slot = st.empty()
if go:
    try:
        if s.image is None:
            st.info("No image: the model answers from the text alone.")
        ans = s.ask(None if s.image is None else CURRENT, prompt, subject=s.subject,
                    on_token=C.streamer(slot, "Answer"))
        ss["cache_answer"] = ans
    except NGError as e:
        st.error(str(e))
ans = ss.get("cache_answer")
if ans is not None:
    C.answer_card("Answer", ans, slot,
                  caption=("With: " + "; ".join(ans.interventions)) if ans.interventions else "Base model, "
                  "no interventions.", secrets=s.secrets)
if s.secrets and ss.get("sample_record") is not None:
    st.caption("True private values drawn on this image (the generator's ground truth; an answer that spells one "
               "leaks it, highlighted above): " + ", ".join(f"`{v}`" for v in s.secrets))
