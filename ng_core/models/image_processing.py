"""Image preprocessing from a CLIP-style ``preprocessor_config.json``, with PIL and numpy only.

transformers' fast image processors need torchvision, which does not install beside
the CPU torch build we pin; the maths for LLaVA's processors is small enough to own.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputImageError

MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard (e.g. 8000 x 5000)
MAX_IMAGE_BYTES = 25 * 1024 * 1024


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
            if not path.is_file():
                raise InputImageError(f"image not found: {path}")
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise InputImageError(
                    f"{path} is {path.stat().st_size / 2**20:.1f} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB"
                )
            fp, name = path, str(path)
        try:
            img = Image.open(fp)
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise InputImageError(
                    f"{name} is {w}x{h} pixels; the limit is {MAX_IMAGE_PIXELS:,} pixels"
                )
            img.load()
        except InputImageError:
            raise
        except Image.DecompressionBombError as e:
            raise InputImageError(f"{name} is too large to decode safely: {e}") from None
        except Exception as e:  # PIL raises many kinds for corrupt data
            raise InputImageError(f"{name} is not a readable image ({type(e).__name__}: {e})") from None
    if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
        raise InputImageError(f"image is {img.size[0]}x{img.size[1]} pixels; the limit is {MAX_IMAGE_PIXELS:,}")
    return img.convert("RGB")


def preprocess(img: Image.Image, cfg: ImageConfig) -> torch.Tensor:
    """RGB image -> float tensor [1, 3, crop, crop], as CLIPImageProcessor would produce."""
    img = img.convert("RGB")
    if cfg.do_resize:
        w, h = img.size
        scale = cfg.size / min(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
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
