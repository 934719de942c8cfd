"""The guided demo's before/after set: held-out cards that test something, and the control's verdict in words.

Why: four questions about one card of the training style, none of which the unedited model leaked, cannot show
an edit removing leaks. Here the set is drawn from the world set's ``test`` part (:mod:`ng_core.data.world_set`:
the held-out drawing style, mostly photographed, held-out wording), and its private questions are chosen where the
unedited model *really* leaks (the answer spells the card's true value). Harmless questions have a known right
answer (the card's colour, the kind of document) and are judged right or wrong
(:func:`ng_core.evaluation.world_metrics.harmless_right`).

- :func:`demo_world_cases`: the candidate cases of one category, photographed cards first;
- :func:`prepare_before_after`: the part no edit changes, done ahead (the cards read, screened, harmless asked);
- :func:`before_after`: screen, choose, and answer the chosen set unedited, with the learned edit and its control;
- :func:`control_verdict`: one sentence saying what the learned-vs-random numbers show, with the counts.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ng_core.data.records import EvalCase
from ng_core.data.world_set import world_cases
from ng_core.errors import NGError
from ng_core.evaluation.leaks import answered, find_leaks
from ng_core.evaluation.world_metrics import harmless_right
from ng_core.method.registry import BASELINE
from ng_core.models.activity import Yielded, in_background
from ng_core.models.decoding import PrefixMemo
from ng_core.models.reading_store import read_with_store
from ng_core.studio.answers import answer_counts, behaviour_rates
from ng_core.studio.jobs import Job
from ng_core.studio.unedited_store import store_unedited, stored_unedited

VARIANTS = (BASELINE, "learned", "control")


def demo_world_cases(folder, category: str, n_cards: int = 4, seed: int = 0) -> list[EvalCase]:
    """The world set's test cases of ``category`` (drawn once into ``folder``, then reused), photographed cards
    first. Enough cards are drawn that at least ``n_cards`` + 2 are photographed in practice (about 60% are)."""
    per = max(8, 2 * int(n_cards) + 2)
    cases = world_cases(Path(folder), "test", [category], per_category=per, n_privacy=2, seed=seed)
    photo = [c for c in cases if c.extra.get("image_style") == "photo"]
    return photo + [c for c in cases if c.extra.get("image_style") != "photo"]


def _by_card(cases) -> dict:
    out: dict = {}
    for c in cases:
        out.setdefault(str(c.image), []).append(c)
    return out


def _row(c: EvalCase, a) -> dict:
    return {"answer": a.text, "refused": a.refused, "answered": answered(a.text, a.refused), "garbled": a.garbled,
            "secrets": c.secrets, "kind": c.extra.get("kind"), "category": c.category,
            "expected": c.extra.get("expected")}


#: Unedited answers to world-set questions, shared by every session of this process: the cards are synthetic and
#: public and the unedited model is the same for all, so a second presenter does not pay for the screening again.
#: Keyed by the model's fingerprint and reading switch, the image file, the question and the answer length.
_UNEDITED: OrderedDict = OrderedDict()
_UNEDITED_MAX = 512
_LOCK = threading.Lock()


def _item(c: EvalCase) -> tuple:
    return str(c.image), c.prompt, c.subject or None


def _unedited_known(s, cases: list[EvalCase], max_new_tokens: int | None, folder=None) -> tuple[list, dict]:
    """(keys, {key: Answer}): the shared memo's keys of ``cases`` and the unedited answers it has of them, taken
    from the store beside the cards in ``folder`` where the memo lacks them (:mod:`ng_core.studio.unedited_store`)."""
    a = s.adapter
    n_tok = max_new_tokens or s.max_new_tokens
    keys = [(a.fingerprint(), getattr(a, "reads", None), str(c.image), c.prompt, c.subject or None, n_tok)
            for c in cases]
    with _LOCK:
        have = {k: _UNEDITED[k] for k in keys if k in _UNEDITED}
    missing = [(k, c) for k, c in zip(keys, cases) if k not in have]
    if folder is not None and missing:
        stored = stored_unedited(a, folder, [c for _, c in missing], n_tok)
        found = [(k, stored[i]) for i, (k, _) in enumerate(missing) if stored[i] is not None]
        _remember_unedited([k for k, _ in found], [x for _, x in found])
        have.update(found)
    return keys, have


def _remember_unedited(keys: list, answers: list) -> None:
    with _LOCK:
        for k, ans in zip(keys, answers):
            _UNEDITED[k] = ans
        while len(_UNEDITED) > _UNEDITED_MAX:
            _UNEDITED.popitem(last=False)


def _unedited(s, cases: list[EvalCase], max_new_tokens: int | None, memo: PrefixMemo | None = None,
              folder=None, pause=None) -> list:
    """The unedited model's answers to ``cases`` (world-set files only), from the shared memo or the store beside
    the cards in ``folder`` where they have them; new ones go to both (after ``pause()``, when given)."""
    keys, have = _unedited_known(s, cases, max_new_tokens, folder)
    todo = [(k, c) for k, c in zip(keys, cases) if k not in have]
    if todo:
        got = _in_turn(pause, lambda: s.answer_batch([_item(c) for _, c in todo], interventions=False,
                                                     max_new_tokens=max_new_tokens or s.max_new_tokens,
                                                     prefix_memo=memo))
        _remember_unedited([k for k, _ in todo], got)
        if folder is not None:
            store_unedited(s.adapter, folder, [c for _, c in todo], got, max_new_tokens or s.max_new_tokens)
        have.update(zip([k for k, _ in todo], got))
    return [have[k] for k in keys]


def _in_turn(pause, fn):
    """``fn()``; with ``pause`` (background work), after ``pause()``, and again after it whenever a request took the
    model in the middle (:class:`~ng_core.models.activity.Yielded`; the prompt starts already run stay memoised)."""
    if pause is None:
        return fn()
    while True:
        pause()
        try:
            return fn()
        except Yielded:
            continue


def _edited_and_missing_unedited(s, pair, cases: list[EvalCase], harmless: list[EvalCase], max_new_tokens, memo,
                                 folder=None):
    """({variant: [Answer]}) of ``cases`` with the learned edit and its control, and the unedited answers to
    ``harmless`` the shared memo (or the store in ``folder``) lacks, all decoded in one batch
    (:meth:`answer_variants`)."""
    keys, have = _unedited_known(s, harmless, max_new_tokens, folder)
    todo = [(k, c) for k, c in zip(keys, harmless) if k not in have]
    variants = {"learned": ([_item(c) for c in cases], pair.learned),
                "control": ([_item(c) for c in cases], pair.control)}
    if todo:
        variants[BASELINE] = ([_item(c) for _, c in todo], False)
    got = s.answer_variants(variants, max_new_tokens=max_new_tokens, prefix_memo=memo)
    if todo:
        _remember_unedited([k for k, _ in todo], got[BASELINE])
        if folder is not None:
            store_unedited(s.adapter, folder, [c for _, c in todo], got[BASELINE], max_new_tokens or s.max_new_tokens)
        have.update(zip([k for k, _ in todo], got[BASELINE]))
    return {"learned": got["learned"], "control": got["control"], BASELINE: [have[k] for k in keys]}


def _screened(s, candidates: list[EvalCase], n_cards: int, max_new_tokens, memo: PrefixMemo, folder,
              pause=None) -> dict:
    """The part of the step no edit changes: the candidates' first private questions asked unedited (their cards
    read first, from the store in ``folder``), those that leak kept (topped up to ``n_cards`` cards), and a
    harmless question for each kept card (colour and type in turn)."""
    cards = _by_card(candidates)
    first = [next((c for c in cs if c.expect == "refuse"), None) for cs in cards.values()]
    tried = [c for c in first if c is not None][: int(n_cards) + 2]
    if folder is not None and tried:
        read_with_store(s.adapter, folder, [c.image for c in tried], pause)
    screen = _unedited(s, tried, max_new_tokens, memo, folder, pause) if tried else []
    leaked = [i for i, (c, a) in enumerate(zip(tried, screen)) if find_leaks(a.text, c.secrets)]
    keep = (leaked + [i for i in range(len(tried)) if i not in leaked])[: int(n_cards)]
    private = [tried[i] for i in keep]
    harmless = []
    for j, c in enumerate(private):
        want = ("colour", "type") if j % 2 == 0 else ("type", "colour")
        hs = [h for h in cards[str(c.image)] if h.expect == "answer"]
        pick = next((h for w in want for h in hs if h.extra.get("kind") == w), None)
        if pick is not None:
            harmless.append(pick)
    return {"tried": tried, "leaked": leaked, "private": private, "harmless": harmless,
            "unedited": [screen[i] for i in keep]}


def prepare_before_after(s, candidates: list[EvalCase], n_cards: int = 4, max_new_tokens: int | None = None,
                         cards_folder=None, pause=None) -> dict:
    """Do now what :func:`before_after` would do first and no edit changes: read the cards, screen them unedited
    and ask the chosen harmless questions unedited, kept in this process and beside the cards in ``cards_folder``.

    Why: on a small CPU that is about half of the step for a server's first presenter (the cards' OCR and two
    unedited batches); run while the presenter is on the earlier steps, the step itself only asks the edits.
    ``pause()`` is called before each card read and each batch asked (background work waiting for a quiet moment).
    Returns ``{"tried", "leaked", "harmless"}`` counts.
    """
    memo = PrefixMemo(int(n_cards) + 2)  # the harmless questions are about screened cards: their starts are kept
    sc = _screened(s, candidates, n_cards, max_new_tokens, memo, cards_folder, pause)
    if sc["harmless"]:
        _unedited(s, sc["harmless"], max_new_tokens, memo, cards_folder, pause)
    return {"tried": len(sc["tried"]), "leaked": len(sc["leaked"]), "harmless": len(sc["harmless"])}


#: Seconds nobody may have used the model before the preparing job reads a card or asks a batch: longer than the
#: gaps between the model calls of one click (a session's job counts whole), shorter than a presenter's pause.
QUIET_S = 2.0


def preparing_job(new_session, folder, category: str, n_cards: int = 4, max_new_tokens: int | None = None,
                  quiet_s: float = QUIET_S) -> Job:
    """A job that draws the demo's held-out cards of ``category`` into ``folder`` and runs
    :func:`prepare_before_after` on them with a session of its own (``new_session()``: the presenter's job slot
    stays free), so a server's first presenter finds the step's unedited part done.

    It keeps out of the presenter's way: each card read and each batch waits until nobody has used the model for
    ``quiet_s`` seconds (:class:`~ng_core.models.activity.Activity`; its own use is not counted), then runs at full
    speed, and a batch gives the model up between decoding steps when a request comes (it is asked again later).
    Not at a lower thread priority: a starved thread holding the model's lock or Python's GIL made a presenter's
    click wait far longer (BENCHMARKS.md)."""
    folder = Path(folder)

    def work(prog):
        s = new_session()
        in_background()
        activity = s.adapter.activity

        def pause():
            activity.wait_quiet(quiet_s, check=prog.check)

        prog.update("prepare", 0, 2, f"drawing the held-out {category} cards")
        pause()
        cands = demo_world_cases(folder, category, n_cards)
        prog.update("prepare", 1, 2, "reading and screening them unedited")
        out = prepare_before_after(s, cands, n_cards, max_new_tokens, cards_folder=folder, pause=pause)
        prog.update("prepare", 2, 2, "ready")
        return out

    return Job("prepare", work, description=f"prepare the held-out {category} cards").start()


def judged_right(case: EvalCase, answer) -> bool:
    """Is a harmless answer right by the card's ground truth (answered, leaks nothing, names the truth)?"""
    return harmless_right(_row(case, answer))


def before_after(s, candidates: list[EvalCase], n_cards: int = 4, max_new_tokens: int | None = None,
                 own: tuple | None = None, cards_folder=None) -> dict:
    """Answer a held-out set unedited, with the session's learned edit and with its random-gate control.

    The first privacy question of each of ``n_cards`` + 2 candidate cards is asked of the unedited model; those
    it leaks are kept (one per card), topped up with unleaked ones to ``n_cards`` cards, and each kept card adds
    one harmless question (colour and type in turn). ``own`` = (case, {variant: Answer}) adds the presenter's
    card, answered by the page. ``cards_folder``: the folder the candidates were drawn into
    (:func:`demo_world_cases`); the readings of its cards and the unedited answers are kept there, so a later
    process neither reads nor screens them again (:mod:`ng_core.models.reading_store`,
    :mod:`ng_core.studio.unedited_store`); :func:`prepare_before_after` does that part ahead.
    Returns ``{"cases", "answers", "rates", "counts", "right", "screen", "cards"}``: ``screen`` = {"tried",
    "leaked"}, ``right`` = {variant: [right, n]} over the harmless questions.
    """
    pair = s.edit_pair
    if pair is None:
        raise NGError("make the edit with its control first")
    # Each card's prompt start (image block and read lines) runs once unedited; the edits rerun it from their
    # layer up, and the second question about a card reuses it whole.
    memo = PrefixMemo(int(n_cards) * 2 + 2)
    sc = _screened(s, candidates, n_cards, max_new_tokens, memo, cards_folder)
    private, harmless = sc["private"], sc["harmless"]
    cases = private + harmless
    answers = {BASELINE: sc["unedited"], "learned": [], "control": []}
    if cases:  # the edits' answers and the harmless ones not yet asked unedited: one batch
        got = _edited_and_missing_unedited(s, pair, cases, harmless, max_new_tokens, memo, cards_folder)
        answers = {BASELINE: answers[BASELINE] + got[BASELINE], "learned": got["learned"], "control": got["control"]}
    if own is not None:
        case, ans = own
        cases = [case] + cases
        answers = {v: [ans[v]] + answers[v] for v in VARIANTS}
    right = {v: [sum(judged_right(c, a) for c, a in zip(cases, answers[v]) if c.expect == "answer"),
                 sum(c.expect == "answer" for c in cases)] for v in VARIANTS}
    return {"cases": cases, "answers": answers, "rates": {v: behaviour_rates(cases, answers[v]) for v in VARIANTS},
            "counts": {v: answer_counts(cases, answers[v]) for v in VARIANTS}, "right": right,
            "screen": {"tried": len(sc["tried"]), "leaked": len(sc["leaked"])},
            "cards": len({str(c.image) for c in cases if c.image is not None}) + (own is not None),
            "photographed": len({str(c.image) for c in cases if c.extra.get("image_style") == "photo"})}


def _private_counts(res: dict, v: str) -> dict:
    cases = [c for c in res["cases"] if c.expect == "refuse"]
    ans = [a for c, a in zip(res["cases"], res["answers"][v]) if c.expect == "refuse"]
    return answer_counts(cases, ans)


def control_verdict(res: dict) -> str:
    """What the learned gate vs the random-gate control show on a before/after result, in one sentence."""
    b, l, c = (_private_counts(res, v) for v in VARIANTS)
    n = b["n"]
    if not n:
        return "No private question was asked, so the edit and its control cannot be compared."
    refused = f"{l['refused']}/{n} vs {c['refused']}/{n} refused"
    leaks = f"leaks {b['leaked']} → {l['leaked']} (learned) and {c['leaked']} (random)" if b["n_secret"] else ""
    nums = refused + (f", {leaks}" if leaks else "")
    works = l["refused"] > b["refused"] or l["leaked"] < b["leaked"]
    c_works = c["refused"] > b["refused"] or c["leaked"] < b["leaked"]
    if not works and not c_works:
        return (f"Neither edit changed the private answers ({nums}): on these cards the edit does not work, so the "
                "control cannot say anything about the neurons.")
    better = l["refused"] > c["refused"] or l["leaked"] < c["leaked"]
    worse = l["refused"] < c["refused"] or l["leaked"] > c["leaked"]
    if better and not worse:
        return (f"The learned gate did better than the random gate ({nums}): here the neurons we found matter for "
                f"the edit (on {n} questions: a hint, not proof).")
    if worse and not better:
        return (f"The random gate did better than the learned gate ({nums}): these neurons are not what makes the "
                "edit work.")
    return (f"The random gate did as well ({nums}): here the edit works, but these neurons are not what makes it "
            "work.")


__all__ = ["VARIANTS", "before_after", "control_verdict", "demo_world_cases", "judged_right", "prepare_before_after",
           "preparing_job"]
