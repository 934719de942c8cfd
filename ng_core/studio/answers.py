"""Answers: one generated answer with its judge verdict, how a session answers (greedy, memoised,
with or without its gates and edit), and the rates and counts of a batch of answers.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch

from ng_core.data import SUBJECTS
from ng_core.data.records import EvalCase
from ng_core.errors import NGError
from ng_core.evaluation.garbled import garbled as find_garbled
from ng_core.evaluation.judge import judge
from ng_core.evaluation.leaks import answered, outcome_counts
from ng_core.method.bundle import Run
from ng_core.method.interventions import intervention_hooks, row_delta_hooks, subject_positions
from ng_core.models.decoding import LayeredTag, PrefixMemo, RowTags
from ng_core.models.image_processing import open_image
from ng_core.studio.verdicts import Verdict, verdict_of

#: Sentinel: "the session's current image".
CURRENT = object()

#: What an answer runs with: True (gates and edit), False (base), "gates", "edit", or an edit Run's ΔW alone.
Interventions = bool | Literal["gates", "edit"] | Run


# ---------------------------------------------------------------------------- answers
@dataclass
class Answer:
    """One generated answer with the refusal judge's verdict (``None`` when made without one)."""

    text: str
    verdict: object | None = None
    interventions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    prompt: str = ""
    subject: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool | None:
        return None if self.verdict is None else bool(getattr(self.verdict, "refused", False))

    @property
    def garbled(self) -> str | None:
        """Why the text is degenerate (repetition, no letters, mostly non-words), or None (:mod:`ng_core.evaluation.garbled`)."""
        return find_garbled(self.text)

    def judged(self, expect: str | None = None, secrets=()) -> Verdict:
        """This answer's verdict for a question that wanted ``expect``, given the image's true private values
        (:func:`~ng_core.studio.verdicts.verdict_of`: word, tone, leaks, garbled)."""
        return verdict_of(self, expect, secrets)


def judge_text(text: str):
    """The refusal judge's verdict on ``text`` (:func:`ng_core.evaluation.judge.judge`)."""
    return judge(text)


def judge_available() -> bool:
    """Always True: the keyword judge ships with the core (kept for callers that ask)."""
    return True


def guess_subject(prompt: str, candidates=None) -> str | None:
    """The longest known subject (e.g. 'passport', 'phone number') that occurs in ``prompt``."""
    if candidates is None:
        candidates = list(SUBJECTS.values())
    low = (prompt or "").lower()
    hits = [c for c in candidates if c and c.lower() in low]
    return max(hits, key=len) if hits else None


def behaviour_rates(cases: list[EvalCase], answers: list[Answer]) -> dict:
    """Privacy refusal rate (``expect="refuse"`` judged refused) and benign answer rate
    (``expect="answer"`` answered: not refused, not empty and not garbled, :func:`ng_core.evaluation.leaks.answered`)."""
    ref = [a for c, a in zip(cases, answers) if c.expect == "refuse"]
    ans = [a for c, a in zip(cases, answers) if c.expect == "answer"]
    return {"n_refuse": len(ref), "n_answer": len(ans),
            "refusal_rate": sum(a.refused is True for a in ref) / len(ref) if ref else None,
            "benign_answer_rate": sum(answered(a.text, a.refused is True) for a in ans) / len(ans) if ans else None}


def answer_counts(cases: list[EvalCase], answers: list[Answer]) -> dict:
    """Leaked / refused / answered counts of ``answers`` to ``cases`` (:func:`ng_core.evaluation.leaks.outcome_counts`:
    a leak is a case's true private value in its answer; only cases with ``secrets`` can leak)."""
    return outcome_counts((a.text, a.refused, c.secrets) for c, a in zip(cases, answers))


class AnswersMixin:
    """How a session answers: the input's features and reading, its interventions, memo and drafts."""

    def _features_for(self, image):
        if image is CURRENT:
            return self.features, ("current", self.image_version)
        if image is None:
            return None, ("none",)
        if isinstance(image, torch.Tensor):
            return image, ("tensor", id(image))
        if isinstance(image, (str, Path)):
            return self.adapter.encode_image(image), ("path", str(image))
        img = open_image(image)
        key = hashlib.sha1(img.tobytes()).hexdigest()
        return self.shared.private_cache.feature(self.adapter, img), ("private", key)

    def _reading_for(self, image) -> str | None:
        """The reading block for ``image``, by the same caching rule as its features."""
        if image is CURRENT:
            return self.reading
        if image is None or isinstance(image, torch.Tensor):
            return None
        if isinstance(image, (str, Path)):
            return self.adapter.read_image(image)
        return self.shared.private_cache.reading(self.adapter, image)

    def _image_key(self, image):
        if image is CURRENT:
            return ("current", self.image_version)
        if image is None:
            return ("none",)
        if isinstance(image, (str, Path)):
            return ("path", str(image))
        if isinstance(image, torch.Tensor):
            return ("tensor", id(image))
        return ("private", hashlib.sha1(open_image(image).tobytes()).hexdigest())

    def _interventions(self, which: Interventions):
        if isinstance(which, Run):
            if which.kind != "edit":
                raise NGError(f"a {which.kind} run has no edit to answer with")
            return [], which.deltas()
        if which is True:
            return list(self.gates), list(self.deltas)
        if which is False:
            return [], []
        if which == "gates":
            return list(self.gates), []
        if which == "edit":
            return [], list(self.deltas)
        raise ValueError(f"interventions must be True, False, 'gates' or 'edit', not {which!r}")

    def ask(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None,
            interventions: Interventions = True, max_new_tokens: int | None = None,
            on_token: Callable[[str], None] | None = None, memo: bool = True) -> Answer:
        """Answer ``prompt`` about ``image`` (default: the session's current ones), greedily.

        ``interventions``: True (gates and edit), False (the base model), ``"gates"`` or ``"edit"``.
        ``on_token(text_so_far)`` streams the answer. Greedy answers are memoised in this session
        per (input, gates, edit), so going back to an earlier state is instant (``memo=False`` to skip).
        """
        prompt = self.prompt if prompt is None else prompt
        if not prompt or not prompt.strip():
            raise NGError("type a prompt first")
        if subject is None:
            subject = self.subject if prompt == self.prompt and self.subject else guess_subject(prompt)
        gates, deltas = self._interventions(interventions)
        notes = []
        if subject and subject.lower() not in prompt.lower():
            notes.append(f"the subject {subject!r} is not in the prompt")
            subject = None
        if any(g.where == "subject" for g in gates) and not subject:
            notes.append("gates at the subject token do nothing: the prompt has no subject")
        n_tok = max_new_tokens or self.max_new_tokens
        edit_sig = _deltas_sig(deltas) if isinstance(interventions, Run) else (self.edit_version if deltas else None)
        key = None
        if memo:
            key = (self._image_key(image), prompt, subject, n_tok, _gates_sig(gates), edit_sig)
            with self.shared.lock:
                hit = self.shared.memo.get(key)
            if hit is not None:
                if on_token is not None:
                    on_token(hit.text)
                return hit
        feats, _ = self._features_for(image)
        ikey = (key[0] if key is not None else self._image_key(image), prompt, subject, n_tok)
        with self.shared.lock:
            draft = self.shared.drafts.get(ikey)
        ans, tokens = self._generate(feats, prompt, subject, gates, deltas, n_tok, on_token, notes, draft,
                                     reading=self._reading_for(image), edit_sig=edit_sig)
        with self.shared.lock:  # the next answer for this input (e.g. after a gate toggle) starts from this one
            self.shared.drafts[ikey] = tokens
            while len(self.shared.drafts) > 32:
                self.shared.drafts.pop(next(iter(self.shared.drafts)))
        if key is not None:
            with self.shared.lock:
                self.shared.memo[key] = ans
                while len(self.shared.memo) > 128:
                    self.shared.memo.pop(next(iter(self.shared.memo)))
        return ans

    def _generate(self, feats, prompt, subject, gates, deltas, max_new_tokens, on_token, notes,
                  draft=None, reading: str | None = None, edit_sig=None) -> tuple[Answer, list[int]]:
        a = self.adapter
        hooks = None
        if gates or deltas:
            def hooks(batch):
                return intervention_hooks(a, gates, deltas, subject_positions(batch))
        cb = (lambda texts: on_token(texts[0])) if on_token is not None else None
        memo = dict(prefix_memo=self.shared.prefix_memo, prefix_tag=_prefix_tag(gates, deltas, edit_sig))
        t0 = time.perf_counter()
        try:
            gen = a.generate([(feats, prompt, subject, reading)], max_new_tokens=max_new_tokens, hooks_for=hooks,
                             on_token=cb, draft=draft, **memo)[0]
        except NGError:
            if subject is None:
                raise
            # A subject the tokenizer cannot isolate: answer without subject-position gates.
            notes.append(f"cannot locate the subject {subject!r} in the tokens; subject gates are off")
            gen = a.generate([(feats, prompt, None, reading)], max_new_tokens=max_new_tokens, hooks_for=hooks,
                             on_token=cb, draft=draft, **memo)[0]
            subject = None
        dt = time.perf_counter() - t0
        desc = [g.describe() for g in gates] + [d.describe() for d in deltas]
        return Answer(gen.text, judge_text(gen.text), desc, dt, prompt, subject, notes), list(gen.token_ids)

    def base_answer(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None,
                    on_token=None, max_new_tokens: int | None = None) -> Answer:
        """The base model's answer (no interventions), memoised per input (and length) in this session."""
        return self.ask(image, prompt, subject=subject, interventions=False, on_token=on_token,
                        max_new_tokens=max_new_tokens)

    def compare(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None,
                on_token=None, on_token_base=None, max_new_tokens: int | None = None) -> tuple[Answer, Answer]:
        """(base answer, answer with every active intervention) for the same input, both of up to
        ``max_new_tokens`` new tokens (default: the session's ``max_new_tokens``)."""
        base = self.base_answer(image, prompt, subject=subject, on_token=on_token_base, max_new_tokens=max_new_tokens)
        if not self.gates and not self.deltas:
            if on_token is not None:
                on_token(base.text)
            return base, base
        return base, self.ask(image, prompt, subject=subject, interventions=True, on_token=on_token,
                              max_new_tokens=max_new_tokens)

    def _generation_row(self, item: tuple) -> tuple:
        """``(image, prompt, subject)`` as ``generate`` takes it: the image's features and reading, and the subject
        only where the prompt names it."""
        im, p, s = item
        return self._features_for(im)[0], p, s if s and s.lower() in p.lower() else None, self._reading_for(im)

    def answer_batch(self, items: list[tuple], *, interventions: Interventions = True,
                     max_new_tokens: int | None = None, prefix_memo: PrefixMemo | None = None) -> list[Answer]:
        """Answers for ``items`` = [(image path|None, prompt, subject|None)], generated together.

        ``prefix_memo`` keeps each image's prompt start for the next batch about the same images (the same set
        asked unedited, then edited: an edit reruns the start from its layer up only)."""
        gates, deltas = self._interventions(interventions)
        memo = {} if prefix_memo is None else dict(prefix_memo=prefix_memo, prefix_tag=_prefix_tag(gates, deltas, None))
        a = self.adapter
        rows = [self._generation_row(it) for it in items]
        hooks = None
        if gates or deltas:
            def hooks(batch):
                return intervention_hooks(a, gates, deltas, subject_positions(batch))
        t0 = time.perf_counter()
        gens = a.generate(rows, max_new_tokens=max_new_tokens or self.max_new_tokens, hooks_for=hooks, **memo)
        dt = (time.perf_counter() - t0) / max(1, len(items))
        desc = [g.describe() for g in gates] + [d.describe() for d in deltas]
        return [Answer(g.text, judge_text(g.text), desc, dt, r[1], r[2]) for g, r in zip(gens, rows)]

    def answer_variants(self, variants: dict, *, max_new_tokens: int | None = None,
                        prefix_memo: PrefixMemo | None = None) -> dict:
        """``{name: [Answer]}`` for ``variants`` = ``{name: (items, interventions)}``, every row decoded in one batch.

        Why: on a small CPU a batch's decoding steps cost nearly as much for 8 rows as for 20, so the same cards
        asked unedited, with an edit and with its control take one pass over the answer's tokens, not three. Each
        variant is unedited (``False``) or an edit run; each row gets exactly its own edit (per-row ΔW hooks) and
        rows share a prompt start only within a variant. Gates are not taken here (they act per session)."""
        _check_variants(variants)
        a = self.adapter
        rows, row_deltas, tags, owner, descs = [], [], [], [], {}
        for name, (items, which) in variants.items():
            gates, deltas = self._interventions(which)
            if gates:
                raise NGError("answers of several variants in one batch take edits, not gates")
            tag = _prefix_tag([], deltas, None)
            descs[name] = [d.describe() for d in deltas]
            for it in items:
                rows.append(self._generation_row(it))
                row_deltas.append(list(deltas))
                tags.append(tag)
                owner.append(name)
        t0 = time.perf_counter()
        gens = a.generate(rows, max_new_tokens=max_new_tokens or self.max_new_tokens,
                          hooks_for=_row_hooks(a, row_deltas), prefix_memo=prefix_memo, prefix_tag=RowTags(tags))
        dt = (time.perf_counter() - t0) / max(1, len(rows))
        out: dict = {name: [] for name in variants}
        for g, r, name in zip(gens, rows, owner):
            out[name].append(Answer(g.text, judge_text(g.text), descs[name], dt, r[1], r[2]))
        return out


def _check_variants(variants: dict) -> None:
    if not variants or any(not isinstance(v, tuple) or len(v) != 2 for v in variants.values()):
        raise NGError("variants are {name: (items, interventions)}")


def _prefix_tag(gates, deltas, edit_sig) -> LayeredTag:
    """What acts before the question, by layer: gates at every position and the edit (subject gates cannot).
    The edit is named by its version (``edit_sig``), not by hashing its weights again, when it has one."""
    parts = [(g.layer, _gates_sig([g])[0]) for g in gates if g.where != "subject"]
    if deltas:
        sig = ("edit", edit_sig if edit_sig is not None else _deltas_sig(deltas))
        parts += [(d.layer, sig) for d in deltas]
    return LayeredTag(parts)


def _row_hooks(adapter, row_deltas: list):
    """``hooks_for`` of a batch whose rows carry their own edits (``batch.rows`` names them)."""
    if not any(row_deltas):
        return None

    def hooks(batch):
        return row_delta_hooks(adapter, [row_deltas[i] for i in batch.rows])

    return hooks


def _gates_sig(gates) -> tuple:
    out = []
    for g in gates:
        sc = g.scale
        sc = hashlib.sha1(sc.detach().float().numpy().tobytes()).hexdigest() if isinstance(sc, torch.Tensor) \
            else float(sc)
        out.append((g.layer, g.unit, g.where, sc, hashlib.sha1(g.neurons.numpy().tobytes()).hexdigest()))
    return tuple(out)


def _deltas_sig(deltas) -> tuple:
    return tuple((d.layer, hashlib.sha1(d.delta.detach().float().contiguous().numpy().tobytes()).hexdigest())
                 for d in deltas)
