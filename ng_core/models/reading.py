"""The reading channel: lines of text an OCR reads off the image, put into the user turn.

Why: ``ng-mini-llava``'s vision tower sees 112 px and cannot read text, so without this the
model invents private values instead of reading them, and an edit has no real leak to remove.
Real LVLMs read; this gives the small model the same input a reading model would have.

The OCR is RapidOCR (PP-OCRv6 det/rec ONNX files shipped inside the ``rapidocr`` wheel, run by
onnxruntime); nothing is downloaded. What it reads goes into the user turn, before the question,
in one documented format (:func:`reading_block`)::

    <image>
    Text read from the image:
    PASSPORT
    Passport No. P4827193
    ...

    What is the passport number on this passport?

The question stays last, so the subject position is still the subject in the question.
The adapter owns the only call to :func:`reading_block`, so the CLI, the dashboard, evaluation and
every Neural Gate stage build the same prompt.
"""
from __future__ import annotations

import json
import logging
import threading
import unicodedata
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ng_core.errors import ModelLoadError

#: Bumped when the text put into the prompt changes for the same OCR output.
READING_FORMAT_VERSION = 1
READING_HEADER = "Text read from the image:"
#: The file in a model folder that switches reading on (written by ``ng-mini-llava``'s assembly).
READING_FILE = "reading.json"


@dataclass(frozen=True)
class ReadingConfig:
    """How a model reads: on/off, and how much of the OCR output reaches the prompt."""

    enabled: bool = False
    engine: str = "rapidocr"
    min_score: float = 0.5  # OCR lines less confident than this are dropped
    max_lines: int = 16
    max_chars: int = 360  # of the whole block (cut at a line boundary)
    threads: int = 0  # onnxruntime intra-op threads; 0 = torch's thread count
    format_version: int = READING_FORMAT_VERSION

    @classmethod
    def from_folder(cls, folder) -> "ReadingConfig":
        """The folder's ``reading.json`` (off when absent: llava-hf checkpoints read nothing by default)."""
        p = Path(folder) / READING_FILE
        if not p.is_file():
            return cls()
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot read {p}: {e}") from None
        known = {f.name for f in fields(cls)}
        bad = sorted(set(raw) - known) if isinstance(raw, dict) else ["(not an object)"]
        if bad:
            raise ModelLoadError(f"{p}: unknown field(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        return cls(**raw)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def clean_line(text: str) -> str:
    """One OCR line as it goes into the prompt: NFKC, no control characters, single spaces.

    Text printed on an image must never become a control token of the chat template, so the
    characters ``<`` and ``>`` and the ``|`` of SmolLM2-style ``<|im_start|>`` markers are replaced.
    """
    t = unicodedata.normalize("NFKC", str(text))
    t = "".join(ch if (ch.isprintable() and ch not in "<>|") else " " for ch in t)
    return " ".join(t.split())


def reading_block(lines, cfg: ReadingConfig) -> str | None:
    """The text put before the question (None when nothing was read)."""
    kept, size = [], len(READING_HEADER)
    for line in lines or ():
        line = clean_line(line)
        if not line:
            continue
        if len(kept) >= cfg.max_lines or size + 1 + len(line) > cfg.max_chars:
            break
        kept.append(line)
        size += 1 + len(line)
    if not kept:
        return None
    return READING_HEADER + "\n" + "\n".join(kept)


def block_lines(block: str | None) -> list[str]:
    """The lines of a reading block (for display): what the model was shown of the image's text."""
    return block.split("\n")[1:] if block else []


class OcrReader:
    """RapidOCR behind a lock, built on first use (loading its ONNX sessions takes ~0.3 s)."""

    def __init__(self, cfg: ReadingConfig):
        if cfg.engine != "rapidocr":
            raise ModelLoadError(f"unknown OCR engine {cfg.engine!r}; this version knows 'rapidocr'")
        self.cfg = cfg
        self._engine = None
        self._lock = threading.Lock()

    def _get(self):
        if self._engine is None:
            try:
                from rapidocr import RapidOCR  # heavy (onnxruntime, opencv): only when a model reads
            except ImportError as e:
                raise ModelLoadError(
                    f"this model reads text with RapidOCR, which is not installed ({e}); "
                    "install the pinned requirements (pip install -r requirements.txt) or turn reading off"
                ) from None

            threads = self.cfg.threads or torch.get_num_threads()
            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
            self._engine = RapidOCR(params={
                "Global.log_level": "warning",
                "Global.text_score": float(self.cfg.min_score),
                "EngineConfig.onnxruntime.intra_op_num_threads": int(threads),
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
        return self._engine

    def read(self, image) -> list[str]:
        """The lines read off a PIL image, top to bottom (an empty list when there is no text)."""
        rgb = image.convert("RGB")  # RapidOCR converts a PIL image to its BGR arrays itself
        with self._lock:
            out = self._get()(rgb)
        txts = getattr(out, "txts", None) or ()
        scores = getattr(out, "scores", None) or (1.0,) * len(txts)
        return [t for t, s in zip(txts, scores) if t and t.strip() and float(s) >= self.cfg.min_score]


__all__ = ["OcrReader", "block_lines", "READING_FILE", "READING_FORMAT_VERSION", "READING_HEADER", "ReadingConfig",
           "clean_line", "reading_block"]
