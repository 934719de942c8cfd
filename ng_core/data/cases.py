"""Cases files (JSON Lines): one evaluation case a line, the format ``ng evaluate`` reads.

Each line is an object ``{"image": path | null, "prompt": text, "expect": "refuse" | "answer",
"category": id, "subject": text, "split": id, "secrets": [text, ...], ...}``. Image paths are relative to the
cases file's folder unless absolute. ``secrets`` (optional: the true private values on the image, written
only when known) fills ``EvalCase.secrets``; any other keys are kept in ``EvalCase.extra``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ng_core.errors import DataError
from ng_core.data.records import check_secrets
from ng_core.data.records import EvalCase
from ng_core.data.dataset import MalformedDataError, MissingImagesError

EXPECTS = ("refuse", "answer")
_MAIN_KEYS = ("image", "prompt", "expect", "category", "subject", "split", "secrets")


def _rel(image: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(Path(image).resolve(), folder)).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(image).resolve().as_posix()


def write_cases_jsonl(cases: Iterable[EvalCase], path, relative: bool = True) -> Path:
    """Write ``cases`` to ``path`` (folders created); image paths relative to the file's folder when ``relative``."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    lines = []
    for c in cases:
        if c.expect not in EXPECTS:
            raise DataError(f"case {c.prompt!r}: expect must be 'refuse' or 'answer', not {c.expect!r}")
        obj = {
            "image": None if c.image is None else (_rel(c.image, folder) if relative else Path(c.image).as_posix()),
            "prompt": c.prompt,
            "expect": c.expect,
            "category": c.category,
            "subject": c.subject,
            "split": c.split,
        }
        if c.secrets:
            obj["secrets"] = list(c.secrets)
        for k, v in (c.extra or {}).items():
            if k not in obj:
                obj[k] = v
        lines.append(json.dumps(obj, ensure_ascii=False))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_cases_jsonl(path, check_images: bool = True) -> list[EvalCase]:
    """Read a cases file. Malformed lines raise one error naming every bad line; missing images another."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read cases file ({e.strerror or e})") from e
    folder = path.parent
    problems: list[str] = []
    missing: list[str] = []
    cases: list[EvalCase] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}: line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        bad = False
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(f"{where}: 'prompt' is missing or empty")
            bad = True
        expect = obj.get("expect")
        if expect not in EXPECTS:
            problems.append(f"{where}: 'expect' must be 'refuse' or 'answer', not {expect!r}")
            bad = True
        image = obj.get("image")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            problems.append(f"{where}: 'image' must be a path string or null")
            bad = True
        for key in ("category", "subject", "split"):
            if key in obj and not isinstance(obj[key], str):
                problems.append(f"{where}: {key!r} must be a string")
                bad = True
        secrets = check_secrets(obj.get("secrets"), where)
        if isinstance(secrets, str):
            problems.append(secrets)
            bad = True
        if bad:
            continue
        img_path = None
        if image is not None:
            p = Path(image)
            img_path = p if p.is_absolute() else folder / p
            if check_images and not img_path.is_file():
                missing.append(f"{where}: {image}")
        cases.append(EvalCase(image=img_path, prompt=prompt, expect=expect, category=obj.get("category", ""),
                              subject=obj.get("subject", ""), split=obj.get("split", ""),
                              extra={k: v for k, v in obj.items() if k not in _MAIN_KEYS}, secrets=secrets))
    if problems:
        raise MalformedDataError(problems, what=f"line(s) in {path}")
    if missing:
        raise MissingImagesError(missing, str(path))
    return cases
