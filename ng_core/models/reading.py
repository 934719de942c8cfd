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

A model can also be told the colour of the surface its text is printed on (``colour`` in its
:class:`ReadingConfig`; ``ng-mini-llava`` does): one more line, measured on the pixels
(:func:`surface_colour`), ends the block::

    Colour behind the text: blue

Why: the small model's vision tower (self-supervised DINOv2, trained with colour jitter) carries
little colour that transfers across drawing styles, so it could not say what colour a card is;
like the OCR, this gives it what a seeing model would have. An image with no text gets
``Colour in the middle of the image: green`` instead, and no text lines.

The question stays last, so the subject position is still the subject in the question.
The adapter owns the only call to the reader (:meth:`OcrReader.read_block`), so the CLI, the
dashboard, evaluation and every Neural Gate stage build the same prompt.
"""
from __future__ import annotations

import json
import logging
import threading
import unicodedata
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ng_core.errors import ModelLoadError
from ng_core.models.colour_names import median_colour_name

#: Bumped when the text put into the prompt changes for the same OCR output.
READING_FORMAT_VERSION = 1
READING_HEADER = "Text read from the image:"
COLOUR_BEHIND_TEXT = "Colour behind the text:"
COLOUR_NO_TEXT = "Colour in the middle of the image:"
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
    colour: bool = False  # end the block with the colour behind the text (measured on the pixels)
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


def reading_block(lines, cfg: ReadingConfig, colour: str | None = None) -> str | None:
    """The text put before the question (None when nothing was read and no colour is given).

    ``colour`` (a name from :func:`surface_colour`) is added only when ``cfg.colour`` is on.
    """
    kept, size = [], len(READING_HEADER)
    for line in lines or ():
        line = clean_line(line)
        if not line:
            continue
        if len(kept) >= cfg.max_lines or size + 1 + len(line) > cfg.max_chars:
            break
        kept.append(line)
        size += 1 + len(line)
    out = [READING_HEADER, *kept] if kept else []
    if cfg.colour and colour:
        out.append(f"{COLOUR_BEHIND_TEXT if kept else COLOUR_NO_TEXT} {clean_line(colour)}")
    return "\n".join(out) if out else None


def block_lines(block: str | None) -> list[str]:
    """The text lines of a reading block (for display): what the model was shown of the image's text."""
    if not block or not block.startswith(READING_HEADER):
        return []
    return [ln for ln in block.split("\n")[1:] if not ln.startswith(COLOUR_BEHIND_TEXT)]


def block_colour(block: str | None) -> str | None:
    """The colour line's colour name in a reading block (None when it has none)."""
    for ln in (block or "").split("\n"):
        for head in (COLOUR_BEHIND_TEXT, COLOUR_NO_TEXT):
            if ln.startswith(head):
                return ln[len(head):].strip() or None
    return None


def surface_colour(image, boxes=()) -> str:
    """The colour name of the surface the text in ``image`` is printed on, measured on its pixels.

    The median pixel of the rectangle that spans every text box the OCR found: the text sits on the
    card, and ink is a small share of that rectangle. Without text, the median of the image's middle
    third. How often it names the colour measured under the card's own mask: ``bench/surface_colour_check.py``
    (``docs/results/surface-colour/``).
    """
    a = np.asarray(image.convert("RGB"))
    h, w, _ = a.shape
    b = np.asarray(boxes if boxes is not None else (), dtype=np.float64).reshape(-1, 2)
    if b.shape[0]:
        x0, y0 = np.clip(b.min(axis=0), 0, None)
        x1, y1 = b.max(axis=0)
        patch = a[int(y0):int(min(h, np.ceil(y1))), int(x0):int(min(w, np.ceil(x1)))]
    else:
        patch = a[int(h / 3):int(2 * h / 3), int(w / 3):int(2 * w / 3)]
    return median_colour_name(patch if patch.size else a)


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
                from rapidocr import RapidOCR  # deferred: onnxruntime and opencv, only when a model reads
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

    def ready(self) -> None:
        """Build the engine now (its ONNX sessions and their threads), not at the first reading."""
        with self._lock:
            self._get()

    def read(self, image) -> list[str]:
        """The lines read off a PIL image, top to bottom (an empty list when there is no text)."""
        return self.read_with_boxes(image)[0]

    def read_with_boxes(self, image) -> tuple[list[str], list]:
        """The lines read off a PIL image and their boxes (4 corner points each, in image pixels)."""
        rgb = image.convert("RGB")  # RapidOCR converts a PIL image to its BGR arrays itself
        with self._lock:
            out = self._get()(rgb)
        txts = getattr(out, "txts", None) or ()
        scores = getattr(out, "scores", None) or (1.0,) * len(txts)
        boxes = getattr(out, "boxes", None)
        boxes = [None] * len(txts) if boxes is None else list(boxes)
        kept = [(t, b) for t, s, b in zip(txts, scores, boxes)
                if t and t.strip() and float(s) >= self.cfg.min_score]
        return [t for t, _ in kept], [b for _, b in kept if b is not None]

    def read_block(self, image) -> str | None:
        """The reading block of a PIL image under this reader's config (with the colour line when on)."""
        if not self.cfg.colour:
            return reading_block(self.read(image), self.cfg)
        lines, boxes = self.read_with_boxes(image)
        return reading_block(lines, self.cfg, colour=surface_colour(image, boxes))


__all__ = ["COLOUR_BEHIND_TEXT", "COLOUR_NO_TEXT", "READING_FILE", "READING_FORMAT_VERSION", "READING_HEADER",
           "OcrReader", "ReadingConfig", "block_colour", "block_lines", "clean_line", "reading_block",
           "surface_colour"]
