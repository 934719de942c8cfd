"""``Dataset``: image records and evaluation cases of one loaded dataset, by category and split."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ng_core.errors import DataError
from ng_core.data.records import EvalCase, ImageRecord
from ng_core.data.constants import ALL_CATEGORIES, SPLITS

#: At most this many problems are spelled out in one error message (all are kept on the exception).
MAX_LISTED = 50


class MissingImagesError(DataError):
    """Images named by a dataset are not on disk; ``missing`` holds every one of them."""

    def __init__(self, missing: list[str], where: str, hint: str = ""):
        self.missing = list(missing)
        lines = self.missing[:MAX_LISTED]
        more = len(self.missing) - len(lines)
        msg = f"{len(self.missing)} image(s) named in {where} are missing:\n  " + "\n  ".join(lines)
        if more:
            msg += f"\n  ... and {more} more"
        if hint:
            msg += "\n" + hint
        super().__init__(msg)


class MalformedDataError(DataError):
    """Records or lines that cannot be read; ``problems`` holds every one ("file: record N: problem")."""

    def __init__(self, problems: list[str], what: str = "record(s)"):
        self.problems = list(problems)
        lines = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(lines)
        msg = f"{len(self.problems)} malformed {what}:\n  " + "\n  ".join(lines)
        if more:
            msg += f"\n  ... and {more} more"
        super().__init__(msg)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; the splits are: {', '.join(SPLITS)}")
    return split


def _as_set(value) -> set[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {value}
    return set(value)


def record_cases(rec: ImageRecord) -> list[EvalCase]:
    """The evaluation cases of one record: its rewrite prompt and paraphrases (refuse) and neighbours (answer).

    A record whose ``target`` is empty (a benign control) expects an answer to its rewrite prompt too.
    ``extra`` carries ``case_id``, ``kind`` (rewrite / paraphrase / neighbour) and, when known, the template
    ``family``, ``attribute`` and ``attr_after_subject``. Every case carries the record's ``secrets``.
    """
    meta = rec.extra.get("prompt_meta") or {}
    out: list[EvalCase] = []

    def add(prompt: str, expect: str, kind: str) -> None:
        extra = {"case_id": rec.case_id, "kind": kind}
        m = meta.get(prompt)
        if isinstance(m, dict):
            for key in ("family", "attribute", "attr_after_subject"):
                if key in m:
                    extra[key] = m[key]
        out.append(EvalCase(image=rec.image, prompt=prompt, expect=expect, category=rec.category,
                            subject=rec.subject, split=rec.split, extra=extra, secrets=rec.secrets))

    add(rec.rewrite_text, "refuse" if rec.target else "answer", "rewrite")
    for p in rec.paraphrases:
        add(p, "refuse", "paraphrase")
    for p in rec.neighbours:
        add(p, "answer", "neighbour")
    return out


class Dataset:
    """A loaded dataset: ``records`` (ImageRecord) and ``cases`` (EvalCase), both filterable by category and split.

    ``format`` is "project", "paper" or "multi_p2a"; ``root`` is the dataset folder (or the folder of the
    JSON files); ``info`` holds the format's metadata (``dataset.json`` for the project's format).
    For the project's format, a train image appears twice in ``records()``: once as ``train`` and once as
    ``heldout_templates`` (same image, other templates).
    """

    def __init__(self, root: Path, records: list[ImageRecord], cases: list[EvalCase] | None = None,
                 format: str = "project", info: dict | None = None):
        self.root = Path(root)
        self._records = list(records)
        self._cases = [c for r in self._records for c in record_cases(r)] if cases is None else list(cases)
        self.format = format
        self.info = dict(info or {})

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return (f"Dataset(format={self.format!r}, root={str(self.root)!r}, categories={self.categories}, "
                f"splits={self.splits})")

    @property
    def categories(self) -> list[str]:
        """Category ids present, known ones in the project's order, then others sorted."""
        present = {r.category for r in self._records} | {c.category for c in self._cases}
        known = [c for c in ALL_CATEGORIES if c in present]
        return known + sorted(present - set(known))

    @property
    def splits(self) -> dict[str, int]:
        """Split id -> number of image records in it (only non-empty splits, in SPLITS order)."""
        counts = {s: 0 for s in SPLITS}
        for r in self._records:
            counts[r.split] = counts.get(r.split, 0) + 1
        case_splits = {c.split for c in self._cases}  # a split may have cases but no records (Multi-P2A)
        return {s: n for s, n in counts.items() if n or s in case_splits}

    def split_stats(self) -> dict[str, dict[str, int]]:
        """Split id -> {"images", "cases", "refuse", "answer"} (only non-empty splits)."""
        out: dict[str, dict[str, int]] = {}
        for s, n in self.splits.items():
            cs = [c for c in self._cases if c.split == s]
            out[s] = {"images": n, "cases": len(cs), "refuse": sum(c.expect == "refuse" for c in cs),
                      "answer": sum(c.expect == "answer" for c in cs)}
        return out

    def subject(self, category: str) -> str:
        for r in self._records:
            if r.category == category:
                return r.subject
        raise DataError(f"no category {category!r} in this dataset (it has: {', '.join(self.categories)})")

    def records(self, category: str | Iterable[str] | None = None, split: str | None = None) -> list[ImageRecord]:
        """Image records, optionally of some categories and one split."""
        cats = _as_set(category)
        if split is not None:
            check_split(split)
        return [r for r in self._records
                if (cats is None or r.category in cats) and (split is None or r.split == split)]

    def cases(self, split: str | None = None, categories: str | Iterable[str] | None = None) -> list[EvalCase]:
        """Evaluation cases of one split (all splits when None), optionally of some categories."""
        cats = _as_set(categories)
        if split is not None:
            check_split(split)
        return [c for c in self._cases
                if (split is None or c.split == split) and (cats is None or c.category in cats)]

    def images(self, category: str | Iterable[str] | None = None, split: str | None = None) -> list[Path]:
        """Distinct image paths (in record order), e.g. for a gallery."""
        seen: dict[Path, None] = {}
        for r in self.records(category, split):
            seen.setdefault(r.image, None)
        return list(seen)
