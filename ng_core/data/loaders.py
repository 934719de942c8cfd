"""Loaders: the project's dataset folders, the paper's ``neural_gate_*.json`` files and Multi-P2A's leakage JSONs.

Every loader returns a :class:`~ng_core.data.dataset.Dataset` of ``ImageRecord`` / ``EvalCase``. Problems are
never dropped silently: malformed records raise one ``MalformedDataError`` naming the file and index of each,
and missing images raise one ``MissingImagesError`` listing them all.

Image paths are resolved under an image root: first exactly, then (as the paper's files and Multi-P2A name the
same images differently, e.g. ``p2_org/images/2017_1.jpg`` vs ``VISPR/2017_1.jpg``, ``.jpg`` vs ``.png``) by
the file stem, when exactly one image under the root has that stem.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from ng_core.errors import DataError
from ng_core.data.records import EvalCase, ImageRecord
from ng_core.data.constants import (
    P2A_CATEGORY_IDS,
    PAPER_FILE_CATEGORIES,
    PAPER_TRAIN_COUNTS,
    SPLITS,
    CATEGORIES,
)
from ng_core.data.records import check_secrets
from ng_core.storage.safe_files import MAX_JSON_BYTES, inside, read_bytes
from ng_core.data.dataset import Dataset, MalformedDataError, MissingImagesError
from ng_core.data.generate import FORMAT_NAME, FORMAT_VERSION

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


# --------------------------------------------------------------------------- helpers

def _read_json(path: Path):
    """A JSON file of the dataset: a regular file, at most MAX_JSON_BYTES, UTF-8 (else a DataError)."""
    data = read_bytes(path, MAX_JSON_BYTES, str(path), DataError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


def _outside(root: Path, rel: str, where: str, what: str, problems: list[str]) -> bool:
    """True (and a problem noted) when ``rel`` leads outside ``root``: absolute, ``..`` or a symlink out."""
    try:
        inside(root, rel, what, DataError)
        return False
    except DataError as e:
        problems.append(f"{where}: {e}")
        return True


def slug(name: str) -> str:
    """A category id from a free-form name: "Phone no." -> "phone_no"."""
    s = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    return s or "unknown"


class ImageResolver:
    """Finds images under a root: exact relative path first, then a unique file with the same stem."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._by_stem: dict[str, list[Path]] | None = None

    def _index(self) -> dict[str, list[Path]]:
        if self._by_stem is None:
            idx: dict[str, list[Path]] = {}
            if self.root.is_dir():
                for p in sorted(self.root.rglob("*")):
                    if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                        idx.setdefault(p.stem, []).append(p)
            self._by_stem = idx
        return self._by_stem

    def _inside(self, p: Path) -> bool:
        root = self.root.resolve()
        return root in p.resolve().parents

    def resolve(self, rel: str) -> Path | None:
        """The image for ``rel`` inside the root (never an absolute path, ``..`` or a symlink out)."""
        p = Path(rel)
        if p.is_absolute():
            return None
        cand = self.root / p
        if cand.is_file() and self._inside(cand):
            return cand
        hits = [h for h in self._index().get(p.stem, []) if self._inside(h)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:  # prefer the one in a folder of the same name
            same_dir = [h for h in hits if h.parent.name == p.parent.name]
            if len(same_dir) == 1:
                return same_dir[0]
        return None


def _str_list(value, field: str, where: str, problems: list[str], subject: str | None) -> list[str]:
    if not isinstance(value, list):
        problems.append(f"{where}: {field} is not a list")
        return []
    out = []
    for j, p in enumerate(value):
        if not isinstance(p, str) or not p.strip():
            problems.append(f"{where}: {field}[{j}] is not a non-empty string")
        elif subject and subject not in p:
            problems.append(f"{where}: {field}[{j}] does not contain the subject {subject!r}: {p!r}")
        else:
            out.append(p)
    return out


def parse_paper_record(rec, where: str, category: str, split: str, image: Path, problems: list[str],
                       block_only: bool = False) -> ImageRecord | None:
    """One record (or the ``heldout_templates`` block of one) in the paper's schema, or None with problems noted."""
    n0 = len(problems)
    if not isinstance(rec, dict):
        problems.append(f"{where}: not a JSON object")
        return None
    rr = rec.get("requested_rewrite")
    subject = prompt = target = None
    if not isinstance(rr, dict):
        problems.append(f"{where}: requested_rewrite is missing or not an object")
    else:
        subject = rr.get("subject")
        prompt = rr.get("prompt")
        tn = rr.get("target_new")
        target = tn.get("str") if isinstance(tn, dict) else None
        if not isinstance(subject, str) or not subject.strip():
            problems.append(f"{where}: requested_rewrite.subject is missing or empty")
            subject = None
        if not isinstance(prompt, str) or "{}" not in prompt:
            problems.append(f"{where}: requested_rewrite.prompt is missing or has no '{{}}' for the subject")
        if not isinstance(target, str):
            problems.append(f"{where}: requested_rewrite.target_new.str is missing or not a string")
    for key in ("paraphrase_prompts", "neighborhood_prompts"):
        if key not in rec:
            problems.append(f"{where}: {key} is missing")
    paras = _str_list(rec.get("paraphrase_prompts", []), "paraphrase_prompts", where, problems, subject)
    neigh = _str_list(rec.get("neighborhood_prompts", []), "neighborhood_prompts", where, problems, subject)
    secrets = check_secrets(rec.get("secrets"), where)
    if isinstance(secrets, str):
        problems.append(secrets)
    if len(problems) > n0:
        return None
    extra: dict = {}
    for key in ("paraphrase_prompts_wo_cat", "neighborhood_prompts_wo_cat", "generation_prompts",
                "neighborhood_answers", "prompt_meta", "image_seed", "fields", "style"):
        if key in rec:
            extra[key] = rec[key]
    if not block_only:
        extra["source_image"] = rec.get("image")
    return ImageRecord(image=image, category=category, subject=subject, rewrite_prompt=prompt, target=target,
                       paraphrases=tuple(paras), neighbours=tuple(neigh), split=split, extra=extra,
                       secrets=secrets)


def _check_image_field(rec: dict, where: str, problems: list[str]) -> str | None:
    img = rec.get("image")
    if isinstance(img, list) and len(img) == 1:  # tolerate Multi-P2A's one-element lists
        img = img[0]
    if not isinstance(img, str) or not img.strip():
        problems.append(f"{where}: image is missing or not a path string")
        return None
    return img


# --------------------------------------------------------------------------- the project's format

def load_project_dataset(path, check_images: bool = True) -> Dataset:
    """Load a folder written by :func:`~ng_core.data.generate_dataset` (``dataset.json`` + ``neural_gate_*.json``)."""
    root = Path(path)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise DataError(f"{root}: no dataset.json; not a dataset folder of this project "
                        f"(create one with `ng data generate --out {root}`)")
    meta = _read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DataError(f"{meta_path}: not a {FORMAT_NAME} dataset description (format = "
                        f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{meta_path}: format_version {meta.get('format_version')!r} is not supported "
                        f"(this version reads {FORMAT_VERSION}); regenerate the dataset")
    cats = meta.get("categories")
    if not isinstance(cats, list) or not cats:
        raise DataError(f"{meta_path}: 'categories' is missing or empty")
    problems: list[str] = []
    missing: list[str] = []
    records: list[ImageRecord] = []
    for k, cinfo in enumerate(cats):
        if not isinstance(cinfo, dict) or not isinstance(cinfo.get("id"), str):
            problems.append(f"{meta_path.name}: categories[{k}]: not an object with an 'id'")
            continue
        cat = cinfo["id"]
        fname = cinfo.get("file") or f"neural_gate_{cat}.json"
        if not isinstance(fname, str) or _outside(root, fname, f"{meta_path.name}: categories[{k}]", "file",
                                                  problems):
            if not isinstance(fname, str):
                problems.append(f"{meta_path.name}: categories[{k}]: file is not a path string")
            continue
        fpath = root / fname
        if fpath.exists() and not fpath.is_file():
            problems.append(f"{fname}: file listed in dataset.json is not a regular file")
            continue
        if not fpath.is_file():
            problems.append(f"{fname}: file listed in dataset.json is missing")
            continue
        data = _read_json(fpath)
        if not isinstance(data, list):
            problems.append(f"{fname}: not a JSON list of records")
            continue
        for i, rec in enumerate(data):
            where = f"{fname}: record {i}"
            if not isinstance(rec, dict):
                problems.append(f"{where}: not a JSON object")
                continue
            img = _check_image_field(rec, where, problems)
            split = rec.get("split")
            if split not in SPLITS:
                problems.append(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
                continue
            if rec.get("category", cat) != cat:
                problems.append(f"{where}: category {rec.get('category')!r} differs from the file's {cat!r}")
                continue
            if img is None:  # still collect the record's other problems
                parse_paper_record(rec, where, cat, split, Path(), problems)
                continue
            if _outside(root, img, where, "image", problems):
                continue
            image = root / img
            case_id = f"{cat}/{rec.get('case_id', i)}"
            r = parse_paper_record(rec, where, cat, split, image, problems)
            if r is None:
                continue
            if check_images and not image.is_file():
                missing.append(f"{fname}: record {i}: {img}")
            records.append(_with(r, case_id=case_id, extra={**r.extra, "source_file": fname, "index": i}))
            if "heldout_templates" in rec:
                h = parse_paper_record(rec["heldout_templates"], f"{where}: heldout_templates", cat,
                                       "heldout_templates", image, problems, block_only=True)
                if h is not None:  # the same image: its secrets unless the block names its own
                    # the train record keeps its twin's wordings: an edit may alternate them (EditConfig.mix_wordings)
                    records[-1] = _with(records[-1], extra={**records[-1].extra, "other_wordings": {
                        "paraphrases": list(h.paraphrases), "neighbours": list(h.neighbours)}})
                    same = {k: r.extra[k] for k in ("fields", "style") if k in r.extra}
                    records.append(_with(h, case_id=case_id, secrets=h.secrets or r.secrets,
                                         extra={**same, **h.extra, "source_file": fname, "index": i,
                                                "source_split": split}))
    if problems:
        raise MalformedDataError(problems)
    if missing:
        raise MissingImagesError(missing, str(root))
    return Dataset(root, _ordered(records), format="project", info=meta)


def _with(r: ImageRecord, **changes) -> ImageRecord:
    return replace(r, **changes)


def _ordered(records: list[ImageRecord]) -> list[ImageRecord]:
    order = {s: k for k, s in enumerate(SPLITS)}
    return sorted(records, key=lambda r: order.get(r.split, len(order)))  # stable within a split


# --------------------------------------------------------------------------- the paper's format

def paper_category(file_path: Path) -> str:
    """``neural_gate_Passport.json`` -> "passport"; the project's own ``neural_gate_<id>.json`` -> id."""
    stem = file_path.stem
    name = stem[len("neural_gate_"):] if stem.startswith("neural_gate_") else stem
    return PAPER_FILE_CATEGORIES.get(name, slug(name))


def load_paper_dataset(path, image_root=None, check_images: bool = True,
                       train_counts: dict[str, int] | None = None) -> Dataset:
    """Load the paper's ``neural_gate_*.json`` files (a folder of them, or one file) with images under ``image_root``.

    Splits: a record's own ``split`` key when it has one; otherwise the paper's protocol: the first
    ``train_counts[category]`` records (PAPER_TRAIN_COUNTS: 10 / 6 / 10 / 4 / 10 / 4) are ``train``, the rest
    ``heldout_images``; categories outside the paper's six are all ``train`` unless ``train_counts`` names them.
    ``image_root`` defaults to the folder of the files.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("neural_gate_*.json"))
        if not files:
            raise DataError(f"{p}: no neural_gate_*.json files in this folder")
        folder = p
    elif p.is_file():
        files, folder = [p], p.parent
    else:
        raise DataError(f"{p}: no such file or folder")
    counts = dict(PAPER_TRAIN_COUNTS)
    counts.update(train_counts or {})
    root = Path(image_root) if image_root is not None else folder
    if image_root is not None and not root.is_dir():
        raise DataError(f"image root {root} is not a folder")
    resolver = ImageResolver(root)
    problems: list[str] = []
    missing: list[str] = []
    records: list[ImageRecord] = []
    for fpath in files:
        cat = paper_category(fpath)
        data = _read_json(fpath)
        if not isinstance(data, list):
            problems.append(f"{fpath.name}: not a JSON list of records")
            continue
        n_train = counts.get(cat)
        for i, rec in enumerate(data):
            where = f"{fpath.name}: record {i}"
            if not isinstance(rec, dict):
                problems.append(f"{where}: not a JSON object")
                continue
            img = _check_image_field(rec, where, problems)
            split = rec.get("split")
            if split is None:
                split = "train" if n_train is None or i < n_train else "heldout_images"
            elif split not in SPLITS:
                problems.append(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
                continue
            if img is None:  # still collect the record's other problems
                parse_paper_record(rec, where, cat, split, Path(), problems)
                continue
            if _outside(root, img, where, "image", problems):
                continue
            found = resolver.resolve(img)
            if found is None:
                if check_images:
                    missing.append(f"{fpath.name}: record {i}: {img}")
                found = root / img
            r = parse_paper_record(rec, where, cat, split, found, problems)
            if r is not None:
                records.append(_with(r, case_id=f"{cat}/{rec.get('case_id', i)}",
                                     extra={**r.extra, "source_file": fpath.name, "index": i}))
    if problems:
        raise MalformedDataError(problems)
    if missing:
        raise MissingImagesError(missing, f"{folder} (image root {root})",
                                 hint="Point --image-root at the folder holding the paper's images, or load "
                                      "without checking images.")
    return Dataset(folder, _ordered(records), format="paper",
                   info={"files": [f.name for f in files], "image_root": str(root)})


# --------------------------------------------------------------------------- Multi-P2A

_P2A_SUBJECT_RE = re.compile(r"(?:of|Regarding|about) the (.+?) (?:in the image|in this picture|shown in the image"
                             r"|in the picture|in this image)")


def p2a_category(name: str) -> str:
    """Multi-P2A category name -> id ("Phone no." -> "phone_number"; "actor/X" -> "actor"; others slugged)."""
    if name in P2A_CATEGORY_IDS:
        return P2A_CATEGORY_IDS[name]
    return slug(name.split("/")[0])


def p2a_subject(prompt: str, category_name: str) -> str:
    """The subject as written in a Multi-P2A prompt ("" when none is found)."""
    if category_name and category_name in prompt:
        return category_name
    m = _P2A_SUBJECT_RE.search(prompt)
    if m:  # "about the key content of the document in the image" -> "document"
        return m.group(1).rsplit(" of the ", 1)[-1]
    return ""


def _p2a_files(path) -> list[Path]:
    paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.glob("*.json") if "leakage" in q.name and "enhanced" not in q.name)
            if not found:
                raise DataError(f"{p}: no Multi-P2A leakage JSON files (e.g. leakage_sen.json) in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return files


def load_multi_p2a(path, image_root=None, categories: Iterable[str] | None = None, check_images: bool = True,
                   split: str | None = None, target: str = "I cannot") -> Dataset:
    """Load Multi-P2A leakage JSONs (a folder with ``leakage_sen.json`` / ``leakage_insen.json``, or file paths).

    Every prompt becomes an ``EvalCase``: sensitive ones (``task`` != "insensitive questions") expect a refusal,
    insensitive ones an answer. ``categories`` filters by id ("passport") or Multi-P2A name ("Passport").
    Splits: the paper's six categories -> ``heldout_templates`` (Multi-P2A's templates differ from the paper's),
    others -> ``unseen_categories``; ``split`` overrides. Records group the prompts per image; prompts whose
    subject cannot be located are kept as cases (``subject`` "") and listed in the record's
    ``extra["prompts_without_subject"]``.
    """
    files = _p2a_files(path)
    folder = files[0].parent
    root = Path(image_root) if image_root is not None else folder
    if image_root is not None and not root.is_dir():
        raise DataError(f"image root {root} is not a folder")
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; the splits are: {', '.join(SPLITS)}")
    want = None if categories is None else {c for c in categories}
    resolver = ImageResolver(root)
    problems: list[str] = []
    missing: list[str] = []
    cases: list[EvalCase] = []
    groups: dict[tuple[str, str], dict] = {}
    for fpath in files:
        data = _read_json(fpath)
        if not isinstance(data, list):
            problems.append(f"{fpath.name}: not a JSON list of records")
            continue
        insen_file = "insen" in fpath.name
        for i, rec in enumerate(data):
            where = f"{fpath.name}: record {i}"
            if not isinstance(rec, dict):
                problems.append(f"{where}: not a JSON object")
                continue
            prompt, cname = rec.get("prompt"), rec.get("category")
            bad = False
            if not isinstance(prompt, str) or not prompt.strip():
                problems.append(f"{where}: prompt is missing or empty")
                bad = True
            if not isinstance(cname, str) or not cname.strip():
                problems.append(f"{where}: category is missing or empty")
                bad = True
            img = _check_image_field(rec, where, problems)
            if bad or img is None:
                continue
            cat = p2a_category(cname)
            if want is not None and cat not in want and cname not in want:
                continue
            task = rec.get("task")
            sensitive = (task != "insensitive questions") if isinstance(task, str) else not insen_file
            if _outside(root, img, where, "image", problems):
                continue
            found = resolver.resolve(img)
            if found is None:
                if check_images:
                    missing.append(f"{fpath.name}: record {i}: {img}")
                found = root / img
            sp = split or ("heldout_templates" if cat in CATEGORIES else "unseen_categories")
            subject = p2a_subject(prompt, cname)
            extra = {k: rec[k] for k in ("id", "task", "attribute", "image_source", "privacy type") if k in rec}
            extra.update({"source_file": fpath.name, "index": i, "source_category": cname})
            cases.append(EvalCase(image=found, prompt=prompt, expect="refuse" if sensitive else "answer",
                                  category=cat, subject=subject, split=sp, extra=extra))
            g = groups.setdefault((str(found), cat), {"image": found, "category": cat, "split": sp, "subject": "",
                                                     "sen": [], "insen": [], "nosubj": [], "source": img,
                                                     "cname": cname})
            if subject and not g["subject"]:
                g["subject"] = subject
            if subject and subject == (g["subject"] or subject):
                (g["sen"] if sensitive else g["insen"]).append(prompt)
            else:
                g["nosubj"].append(prompt)
    if problems:
        raise MalformedDataError(problems)
    if missing:
        raise MissingImagesError(missing, f"{folder} (image root {root})",
                                 hint="Point --image-root at the folder holding the Multi-P2A images, or load "
                                      "without checking images.")
    records: list[ImageRecord] = []
    for k, g in enumerate(groups.values()):
        if not g["subject"] or not (g["sen"] or g["insen"]):
            continue  # its prompts stay available as cases
        first = (g["sen"] or g["insen"])[0]
        records.append(ImageRecord(
            image=g["image"], category=g["category"], subject=g["subject"],
            rewrite_prompt=first.replace(g["subject"], "{}", 1), target=target if g["sen"] else "",
            paraphrases=tuple(g["sen"][1:] if g["sen"] else ()),
            neighbours=tuple(g["insen"][1:] if not g["sen"] else g["insen"]),
            case_id=f"p2a/{k}", split=g["split"],
            extra={"source_image": g["source"], "source_category": g["cname"],
                   "prompts_without_subject": g["nosubj"]}))
    return Dataset(folder, _ordered(records), cases=cases, format="multi_p2a",
                   info={"files": [f.name for f in files], "image_root": str(root)})


# --------------------------------------------------------------------------- autodetection

def detect_format(path) -> str:
    """ "project", "paper" or "multi_p2a" for a dataset path (DataError when none fits)."""
    p = Path(path)
    if p.is_dir():
        if (p / "dataset.json").is_file():
            return "project"
        if any(p.glob("neural_gate_*.json")):
            return "paper"
        if any("leakage" in q.name for q in p.glob("*.json")):
            return "multi_p2a"
        raise DataError(f"{p}: not a dataset folder: no dataset.json, neural_gate_*.json or Multi-P2A "
                        f"leakage_*.json in it")
    if p.is_file():
        if p.name == "dataset.json":
            return "project"
        if p.name.startswith("neural_gate_"):
            return "paper"
        data = _read_json(p)
        if isinstance(data, list) and data and isinstance(data[0], dict):
            if "requested_rewrite" in data[0]:
                return "paper"
            if "prompt" in data[0] and "category" in data[0]:
                return "multi_p2a"
        raise DataError(f"{p}: neither a paper-format (neural_gate_*.json) nor a Multi-P2A JSON file")
    raise DataError(f"{p}: no such file or folder")


def load_dataset(path, image_root=None, format: str = "auto", check_images: bool = True, **kwargs) -> Dataset:
    """Load a dataset in any supported format.

    ``format``: "auto" (default: a folder with ``dataset.json`` is the project's format; a folder or file of
    ``neural_gate_*.json`` the paper's; Multi-P2A leakage JSONs Multi-P2A), "project", "paper" or "multi_p2a".
    ``image_root``: where the paper's or Multi-P2A's relative image paths start (default: the files' folder).
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "project":
        p = Path(path)
        if image_root is not None:
            raise DataError("image_root does not apply to the project's dataset folders (images are inside them)")
        return load_project_dataset(p.parent if p.is_file() else p, check_images=check_images)
    if fmt == "paper":
        return load_paper_dataset(path, image_root=image_root, check_images=check_images, **kwargs)
    if fmt in ("multi_p2a", "multi-p2a", "p2a"):
        return load_multi_p2a(path, image_root=image_root, check_images=check_images, **kwargs)
    raise DataError(f"unknown dataset format {format!r}; use auto, project, paper or multi_p2a")
