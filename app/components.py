"""Small reusable UI pieces: answers with verdicts, word diffs, the long-job panel, the sidebar."""
from __future__ import annotations

import difflib
import html
import time

import streamlit as st

from app import charts
from app import state as S
from ng_core.studio import has_usable_secrets, leak_parts, verdict_of


#: Verdict colours by tone (:class:`ng_core.studio.Verdict`): a refused private question is good (green), a
#: harmless one refused or a garbled answer is a cost (amber), a leak is red; with no expectation known, neutral.
GOOD, COST, NEUTRAL = "green", "orange", "gray"
_TONE = {"good": GOOD, "cost": COST, "neutral": NEUTRAL, "bad": "red"}


def verdict_md(answer, expect: str | None = None) -> str:
    """A coloured label for ``answer``'s verdict, coloured by ``expect`` ("refuse" for a private question,
    "answer" for a harmless one, None unknown); a garbled answer is flagged instead of "answered"."""
    v = verdict_of(answer, expect)
    colour = _TONE[v.tone]
    if v.refused is None:
        return ":gray-background[no judge installed]"
    if v.refused:
        label = f":{colour}-background[refused" + (f" — matched “{v.matched}”" if v.matched else "") + "]"
        if v.judge_leak:
            label += " :orange-background[but leaked private-looking text]"
        return label
    if v.garbled:
        return f":orange-background[garbled ({v.garbled}) — not counted as answered]"
    return f":{colour}-background[answered]"


def verdict_word(answer) -> str:
    """The verdict in a word or two (no colour), for table cells."""
    return verdict_of(answer).word


_CSS_COLOUR = {GOOD: "#dcfce7", COST: "#fef3c7", NEUTRAL: "#f3f4f6", "red": "#fecaca"}


def verdict_html(answer, expect: str | None = None, secrets=()) -> str:
    """The verdict word of a table cell on its colour: a leak red, then as :func:`verdict_md`."""
    v = verdict_of(answer, expect, secrets)
    return (f"<span style='background:{_CSS_COLOUR[_TONE[v.tone]]};padding:0 3px;border-radius:3px'>"
            f"{html.escape(v.word)}</span>")


MARK_STYLE = "background:#fecaca;color:#7f1d1d;padding:0 2px;border-radius:3px"


def highlight_html(text: str, secrets=()) -> str:
    """``text`` HTML-escaped, with the substrings that spell one of ``secrets`` (the image's true private
    values) in ``<mark>``."""
    if not text:
        return "<i>(empty)</i>"
    return "".join(f"<mark style='{MARK_STYLE}'>{html.escape(p)}</mark>" if leak else html.escape(p)
                   for p, leak in leak_parts(text, secrets))


def leak_md(answer, secrets=()) -> str:
    """A coloured label: which true values the answer spells ("" when there are no usable secrets)."""
    v = verdict_of(answer, None, secrets)
    if not v.judged_leaks:
        return ""
    if v.leaks:
        return ":red-background[leaked the true " + ", ".join(f"“{s}”" for s in v.leaks) + "]"
    return ":green-background[no true private value in the answer]"


def answer_card(title: str, answer, placeholder=None, caption: str = "", secrets=(), expect: str | None = None) -> None:
    """An answer with its verdict (into ``placeholder`` when given, e.g. after streaming); with ``secrets``
    (the image's true private values) the leaked substrings are highlighted; ``expect`` colours the verdict."""
    box = placeholder.container() if placeholder is not None else st.container()
    with box:
        st.markdown(f"**{title}**")
        if has_usable_secrets(secrets) and answer.text:
            st.markdown("> " + highlight_html(answer.text, secrets), unsafe_allow_html=True)
        else:
            st.markdown(f"> {html.escape(answer.text) if answer.text else '*(empty answer)*'}")
        lk = leak_md(answer, secrets)
        st.markdown(f"{verdict_md(answer, expect)}  ·  " + (f"{lk}  ·  " if lk else "") + f"{answer.seconds:.2f} s")
        for n in answer.notes:
            st.caption(f"Note: {n}")
        if caption:
            st.caption(caption)


def streamer(placeholder, title: str, every: float = 0.15):
    """An on_token callback that shows the partial answer in ``placeholder`` (at most every ``every`` s).

    Throttled: a message per token costs the server and the browser more than the token itself on a
    small CPU model.
    """
    last = [0.0]

    def cb(text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            placeholder.markdown(f"**{title}**\n\n> {html.escape(text)}▌")
    return cb


def diff_html(before: str, after: str) -> str:
    """Word diff of two answers: removed words struck through in red, added words in green."""
    a, b = before.split(), after.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(html.escape(" ".join(a[i1:i2])))
        if op in ("delete", "replace"):
            out.append("<del style='background:#fde2e1;color:#9b1c1c'>" + html.escape(" ".join(a[i1:i2])) + "</del>")
        if op in ("insert", "replace"):
            out.append("<ins style='background:#dcfce7;color:#14532d;text-decoration:none'>"
                       + html.escape(" ".join(b[j1:j2])) + "</ins>")
    return " ".join(x for x in out if x) or "<i>(empty)</i>"


def cancel_text(job) -> str:
    """How a job was cancelled, in words: by the user, or by the watchdog (nobody was polling)."""
    if getattr(job, "stale", False):
        return f"cancelled: the page stopped polling for {job.stale_after:.0f} s (tab closed or disconnected)"
    return "cancelled"


def heartbeat() -> None:
    """Tell the session's running job that a page is still watching it (see ``Job.heartbeat``)."""
    s = S.studio()
    if s.job is not None and not s.job.done:
        s.job.heartbeat()


def job_panel(kinds: tuple, title: str) -> str | None:
    """Show the session's running job of ``kinds`` (live) or how the last one ended.

    Returns the job's final status once, when it has just ended ("done", "failed", "cancelled").
    """
    s = S.studio()
    job = s.job
    if job is None or job.kind not in kinds:
        return None
    heartbeat()
    if not job.done:
        _job_fragment(title)
        return None
    seen = st.session_state.get("job_seen")
    if seen != id(job):
        st.session_state["job_seen"] = id(job)
    if job.status == "done":
        st.success(f"{title} finished in {S.fmt_seconds(job.elapsed)}.")
    elif job.status == "cancelled":
        st.warning(f"{title} was {cancel_text(job)} after {S.fmt_seconds(job.elapsed)}; the session is unchanged.")
    else:
        st.error(f"{title} failed: {job.error_message()} — the session is unchanged.")
        if job.traceback:
            with st.expander("Details"):
                st.code(job.traceback[-4000:])
    stage = job.last.stage if job.last is not None else None
    hist = job.metric_history(stage) if stage else []
    if hist and job.status != "done":
        st.plotly_chart(charts.loss_chart(hist, f"Loss terms per step — {stage}"), width="stretch")
    return job.status


#: seconds between redraws of the live job panel, and of its loss chart when it is shown. Each redraw costs the
#: browser: redrawing a plotly chart every 0.7 s kept Chromium busy on one of a 2-core machine's cores, and the
#: job it watched (the guided demo's edit) took 1.5x its time in the core; at one redraw a second (no chart)
#: Chromium still took 0.4 of a core while the demo's edit ran (BENCHMARKS.md).
LIVE_EVERY_S = 2.0
LIVE_CHART_EVERY_S = 4.0


@st.fragment(run_every=LIVE_EVERY_S)
def _job_fragment(title: str) -> None:
    s = S.studio()
    job = s.job
    if job is None:
        return
    if job.done:
        st.rerun()
    job.heartbeat()
    ev = job.last
    from ng_core.studio.story import stage_bars

    with st.status(f"{title}: running…", expanded=True, state="running"):
        bars = stage_bars(job.progress)
        if not bars:
            st.progress(0.0, text="starting")
        for b in bars:  # one bar per stage: none runs backwards when the next stage starts
            eta = "done" if b["finished"] else f"ETA {S.fmt_seconds(b['eta'])} for this stage"
            st.progress(b["fraction"], text=f"{b['stage']}: {b['message'] or ''} — {b['done']}/{b['total']} · "
                                            f"{S.fmt_seconds(b['elapsed'])} · {eta}")
        c1, c2, c3 = st.columns(3)
        c1.metric("Elapsed", S.fmt_seconds(job.elapsed))
        c2.metric("ETA (this stage)", S.fmt_seconds(job.eta),
                  help="From this stage's own pace; later stages are timed when they start.")
        if ev and ev.metrics:
            nums = {k: v for k, v in ev.metrics.items() if isinstance(v, float)}
            c3.metric("Loss", f"{nums.get('loss', next(iter(nums.values()), float('nan'))):.4f}" if nums else "–")
            st.caption("  ·  ".join(f"{k} = {v:.4f}" for k, v in nums.items()))
        live = st.toggle("Live loss chart", key="live_loss_on",
                         help=f"Redrawn every {LIVE_CHART_EVERY_S:g} s. Off by default: on a small machine that also "
                              "runs the browser, redrawing the chart slows the job down.")
        hist = job.metric_history(ev.stage) if ev and live else []
        if hist:  # the current stage only: mask steps and edit steps never share an axis
            st.plotly_chart(_live_chart(job, ev.stage, hist), width="stretch", key="live_loss")
        if job.cancel_requested:
            st.button("Cancelling…", disabled=True, key="cancel_job_wait")
        else:
            st.button("Cancel", key="cancel_job", on_click=job.cancel, type="secondary",
                      help="Stop at the next step; nothing in the session changes.")


def _live_chart(job, stage: str, hist: list):
    """The loss chart of ``stage``, rebuilt at most every ``LIVE_CHART_EVERY_S`` (the same figure in between)."""
    memo = st.session_state.get("_live_chart")
    now = time.monotonic()
    if memo is None or memo["job"] != id(job) or memo["stage"] != stage or now - memo["at"] >= LIVE_CHART_EVERY_S:
        memo = {"job": id(job), "stage": stage, "at": now,
                "fig": charts.loss_chart(hist, f"Loss terms per step — {stage}")}
        st.session_state["_live_chart"] = memo
    return memo["fig"]


def sidebar() -> None:
    """Always visible: model, current input, active interventions, running job (redrawn after the page)."""
    st.session_state["_state_slot"] = st.sidebar.empty()
    heartbeat()
    if S.studio().busy:
        with st.sidebar:
            _sidebar_heartbeat()
    refresh_state_panel()


@st.fragment(run_every=2.0)
def _sidebar_heartbeat() -> None:
    """Keeps the running job alive from any page while this tab is open (its job panel may not be shown), and
    shows its progress by stage (the state panel above is redrawn only by whole-page runs)."""
    heartbeat()
    s = S.studio()
    if s.job is not None and s.job.done:
        st.rerun()  # the whole page: the job's result changes the state panel
    if s.busy:
        st.info(job_line(s.job))


#: A prompt longer than this is shortened in the sidebar (the whole text on hover).
SIDEBAR_PROMPT_CHARS = 90


def short_text(text: str, limit: int = SIDEBAR_PROMPT_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def job_line(job) -> str:
    """A running job in one line, with the stage it is in and its steps (``28/40``), not only a share of the
    whole that stays at 0% while the first stage runs."""
    from ng_core.studio.story import stage_bars

    bars = stage_bars(job.progress)
    now = next((b for b in bars if not b["finished"]), bars[-1] if bars else None)
    if now is None:
        return f"Running: {job.description} (starting)"
    return f"Running: {job.description} — {now['stage']} {now['done']}/{now['total']}"


def private_values_editor(s, key: str = "pv") -> None:
    """Let the presenter say what is private on a card the generator did not draw: tick lines the model read,
    or type values. The values go to the session (``s.set_secrets``) and nowhere else; from then on leaks on this
    card are highlighted and counted like those of the generator's cards."""
    from ng_core.studio.private_values import typed_values, unusable_values, value_choices

    ver = s.image_version
    choices = value_choices(s.reading)
    labels = {c["value"]: c["line"] for c in choices}
    ss = st.session_state
    with st.container(border=True):
        st.markdown("**Private values on your card** — kept in this session only")
        ticked = []
        if choices:
            ticked = st.multiselect("Lines the model read: tick the private ones", list(labels),
                                    key=f"w_{key}_tick_{ver}",
                                    format_func=lambda v: v if labels[v] == v else f"{v}  (read: “{labels[v]}”)")
        elif s.model.reads:
            st.caption("The model read no text on this card; type the private values below.")
        typed = typed_values(st.text_area("…or type private values (one per line)", key=f"w_{key}_typed_{ver}",
                                          height=68, placeholder="P4827193\nJOHN SMITH"))
        values = list(dict.fromkeys(ticked + typed))
        if tuple(values) != tuple(s.secrets) and (values or ss.get(f"_{key}_set") == ver):
            s.set_secrets(values)
            ss[f"_{key}_set"] = ver
        short = unusable_values(values)
        if short:
            st.caption("Too short to count as a leak (under 4 letters or digits), ignored: "
                       + ", ".join(f"`{v}`" for v in short))
        if s.secrets:
            st.caption("An answer that spells one of these is a leak, highlighted in red: "
                       + ", ".join(f"`{v}`" for v in s.secrets))
        else:
            st.caption("Until you give them, leaks on this card cannot be highlighted or counted; the refusal judge "
                       "still tells whether the model refuses.")


def stop() -> None:
    """End the page here, after what the router does after a page: keep the tab for a reload, redraw the sidebar's
    state panel, write the URL. After ``st.stop()`` every Streamlit call raises again, so the router's own calls
    after the page are lost and the sidebar showed the state before it."""
    S.remember_tab()
    refresh_state_panel()
    S.sync_url()
    st.stop()


def refresh_state_panel() -> None:
    """(Re)draw the sidebar's state panel; fragments call it so it follows their changes."""
    slot = st.session_state.get("_state_slot")
    if slot is None:
        return
    s = S.studio()
    with slot.container():
        st.markdown(f"**Model:** `{s.model.id}`  \nweights `{s.model.fingerprint}` · "
                    f"edit `{s.edit_fingerprint()}`")
        if s.image is not None:
            st.image(s.image, caption=s.image_name or "current image", width=180)
        else:
            st.caption("No image yet: pick one on *Model & inputs*.")
        if s.prompt:
            st.caption(f"Prompt: {short_text(s.prompt)}", help=s.prompt if len(s.prompt) > SIDEBAR_PROMPT_CHARS
                       else None)
        st.markdown("**Active interventions**")
        state_view(s, key="sidebar")
        if s.busy:
            pass  # the job's line is drawn by _sidebar_heartbeat, which follows it live
        elif s.job is not None and s.job.status == "cancelled" and s.job.stale:
            st.caption(f"Last job ({s.job.description}) {cancel_text(s.job)}.")


def state_view(s, key: str = "") -> None:
    """The session's gates and edit in a line or two, with the full table on demand (sidebar and pages)."""
    import pandas as pd

    from ng_core.studio.story import state_rows, state_summary

    a = s.model
    if not s.gates and not s.deltas:
        st.caption("None — answers come from the base model.")
        return
    st.markdown(state_summary(s.gates, s.deltas, a.hidden_size, a.ffn_size))
    rows = state_rows(s.gates, s.deltas)
    if len(rows) > 1:
        with st.expander(f"Table ({len(rows)} rows)"):
            st.dataframe(pd.DataFrame(rows), hide_index=True)


def subject_picker(prompt: str, current: str | None, key: str) -> str | None:
    """The question's words as clickable pills: the one clicked becomes the subject (None if none)."""
    from ng_core.studio.story import question_words

    words = question_words(prompt)
    if not words:
        return current
    if key in st.session_state and st.session_state[key] not in words:
        del st.session_state[key]
    default = next((w for w in words if current and w.lower() == current.lower()), None)
    pick = st.pills("Subject — click the word the question is about", words, key=key, default=default,
                    help="Neural Gate acts at the last token of the subject (e.g. 'passport', 'card').")
    return pick or current


def confirm_long(key: str, message: str) -> bool:
    """A two-step start for long jobs: the first click shows ``message`` and a confirm button."""
    ss = st.session_state
    if not ss.get(key):
        return False
    st.warning(message)
    c1, c2 = st.columns(2)
    go = c1.button("Start anyway", key=f"{key}_yes", type="primary")
    if c2.button("Cancel", key=f"{key}_no"):
        ss[key] = False
        st.rerun()
    if go:
        ss[key] = False
    return go
