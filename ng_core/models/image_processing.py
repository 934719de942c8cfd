"""Image preprocessing from a CLIP-style ``preprocessor_config.json``, with PIL and numpy only.

transformers' fast image processors need torchvision, which does not install beside
the CPU torch build we pin; the maths for LLaVA's processors is small enough to own.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ng_core.errors import InputImageError

MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard (e.g. 8000 x 5000)
MAX_IMAGE_BYTES = 25 * 1024 * 1024
MAX_ASPECT_RATIO = 20.0  # longest / shortest edge; beyond it the shortest-edge resize explodes
MAX_RESIZED_PIXELS = 16_000_000  # pixels after the shortest-edge resize, before the crop


@dataclass(frozen=True)
class ImageConfig:
    size: int = 224  # shortest edge after resize
    crop: int = 224  # square center crop
    do_resize: bool = True
    do_center_crop: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple = (0.485, 0.456, 0.406)
    image_std: tuple = (0.229, 0.224, 0.225)
    resample: int = 3  # PIL bicubic
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, d: dict) -> "ImageConfig":
        size = d.get("size", 224)
        if isinstance(size, dict):
            size = size.get("shortest_edge") or size.get("height") or 224
        crop = d.get("crop_size", size)
        if isinstance(crop, dict):
            crop = crop.get("height") or crop.get("width") or size
        return cls(
            size=int(size),
            crop=int(crop),
            do_resize=bool(d.get("do_resize", True)),
            do_center_crop=bool(d.get("do_center_crop", True)),
            rescale_factor=float(d.get("rescale_factor", 1 / 255)),
            do_normalize=bool(d.get("do_normalize", True)),
            image_mean=tuple(float(x) for x in d.get("image_mean", cls.image_mean)),
            image_std=tuple(float(x) for x in d.get("image_std", cls.image_std)),
            resample=int(d.get("resample", 3)),
        )

    @classmethod
    def from_folder(cls, folder: Path) -> "ImageConfig":
        p = Path(folder) / "preprocessor_config.json"
        if not p.exists():
            raise InputImageError(f"{p} is missing: the model folder has no image preprocessing config")
        return cls.from_dict(json.loads(p.read_text()))

    def to_dict(self) -> dict:
        return {
            "do_resize": self.do_resize,
            "size": {"shortest_edge": self.size},
            "do_center_crop": self.do_center_crop,
            "crop_size": {"height": self.crop, "width": self.crop},
            "do_rescale": True,
            "rescale_factor": self.rescale_factor,
            "do_normalize": self.do_normalize,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "do_convert_rgb": True,
            "resample": self.resample,
            "image_processor_type": "CLIPImageProcessor",
        }


def open_image(src) -> Image.Image:
    """Open a path, bytes or PIL image as RGB, with clear errors for non-images and bombs."""
    if isinstance(src, Image.Image):
        img = src
    else:
        if isinstance(src, (bytes, bytearray)):
            if len(src) > MAX_IMAGE_BYTES:
                raise InputImageError(
                    f"image is {len(src) / 2**20:.1f} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB"
                )
            fp, name = io.BytesIO(src), "uploaded image"
        else:
            path = Path(src)
            if not path.exists():
                raise InputImageError(f"image not found: {path}")
            if not path.is_file():
                raise InputImageError(f"{path} is not a regular file")
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise InputImageError(
                    f"{path} is {path.stat().st_size / 2**20:.1f} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB"
                )
            fp, name = path, str(path)
        try:
            img = Image.open(fp)
            check_size(img.size, name=name)  # before decoding a single pixel
            img.load()
        except InputImageError:
            raise
        except Image.DecompressionBombError as e:
            raise InputImageError(f"{name} is too large to decode safely: {e}") from None
        except Image.UnidentifiedImageError:  # its message holds the file object's repr, not words for a person
            raise InputImageError(f"{name} is not a readable image: its content is not a PNG, JPEG or WebP picture "
                                  "(a renamed or empty file?)") from None
        except Exception as e:  # PIL raises many kinds for corrupt data
            raise InputImageError(f"{name} is not a readable image: the file is damaged or cut short "
                                  f"({type(e).__name__}: {_short(e)})") from None
    check_size(img.size)
    try:
        return to_rgb(img)
    except MemoryError:
        raise InputImageError(f"image is {img.size[0]}x{img.size[1]} pixels: not enough memory to convert it") from None


def _short(e: Exception) -> str:
    """An exception's message without object reprs (``<_io.BytesIO object at 0x...>``), at most 120 characters."""
    text = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>", "the file", str(e))
    return text if len(text) <= 120 else text[:117] + "..."


def check_size(size, cfg: "ImageConfig | None" = None, name: str = "image") -> None:
    """Refuse sizes whose pixels, aspect ratio or pixels after the shortest-edge resize are over the limits."""
    w, h = int(size[0]), int(size[1])
    if w < 1 or h < 1:
        raise InputImageError(f"{name} is {w}x{h} pixels: empty")
    if w * h > MAX_IMAGE_PIXELS:
        raise InputImageError(f"{name} is {w}x{h} pixels; the limit is {MAX_IMAGE_PIXELS:,} pixels")
    if max(w, h) / min(w, h) > MAX_ASPECT_RATIO:
        raise InputImageError(f"{name} is {w}x{h} pixels: its aspect ratio {max(w, h) / min(w, h):.0f}:1 is over "
                              f"the limit of {MAX_ASPECT_RATIO:.0f}:1")
    if cfg is not None and cfg.do_resize:
        nw, nh = resized_size(w, h, cfg.size)
        if nw * nh > MAX_RESIZED_PIXELS:
            raise InputImageError(f"image is {w}x{h} pixels; resized to a shortest edge of {cfg.size} it would be "
                                  f"{nw}x{nh}, over the limit of {MAX_RESIZED_PIXELS:,} pixels")


def resized_size(w: int, h: int, shortest: int) -> tuple[int, int]:
    scale = shortest / min(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB as the photo looks: EXIF orientation applied, 16/32-bit data scaled, transparency on white."""
    if img.mode == "RGB" and not img.getexif().get(0x0112):
        return img
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as stored
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            top = 65535.0
        else:
            lo, hi = float(np.nanmin(arr)) if arr.size else 0.0, float(np.nanmax(arr)) if arr.size else 1.0
            top = 65535.0 if (img.mode == "I" and 255 < hi <= 65535 and lo >= 0) else (255.0 if hi <= 255 and lo >= 0
                                                                                       else None)
            if top is None:  # arbitrary range: stretch to 0..255
                arr = (arr - lo) / ((hi - lo) or 1.0) * 255.0
                top = 255.0
        arr = np.clip(np.nan_to_num(arr) / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def preprocess(img: Image.Image, cfg: ImageConfig) -> torch.Tensor:
    """RGB image -> float tensor [1, 3, crop, crop], as CLIPImageProcessor would produce.

    The size is checked first (:func:`check_size`): the resized image is never larger than the limits.
    """
    check_size(img.size, cfg)
    img = to_rgb(img)
    if cfg.do_resize:
        w, h = img.size
        nw, nh = resized_size(w, h, cfg.size)
        img = img.resize((nw, nh), resample=cfg.resample)
    if cfg.do_center_crop:
        w, h = img.size
        c = cfg.crop
        left, top = (w - c) // 2, (h - c) // 2
        img = img.crop((left, top, left + c, top + c))
    arr = np.asarray(img, dtype=np.float32) * cfg.rescale_factor
    if cfg.do_normalize:
        arr = (arr - np.asarray(cfg.image_mean, np.float32)) / np.asarray(cfg.image_std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
