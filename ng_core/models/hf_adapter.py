"""One adapter for every supported vision-language family (``AutoModelForImageTextToText`` classes).

A family contributes only data (:class:`ng_core.models.families.FamilySpec`: module paths, image markers,
position kind, pixel path); caches, batching, generation, subject finding, fingerprints and layer replay
live here once. The model is never mutated: runs go through :meth:`forward`, :meth:`run_layers` and
:meth:`generate`, with interventions attached as scoped hooks while the adapter's lock is held, so two
browser sessions sharing one loaded model never see each other's gates or edits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import threading
from contextlib import contextmanager
from pathlib import Path

import torch
import transformers
from PIL import Image
from torch import nn

from ng_core.errors import ModelLoadError
from ng_core.models import family_inputs, kv
from ng_core.models.adapter import Batch, ModelAdapter, ModelCaches, Sequence
from ng_core.models.families import FAMILIES, FamilySpec, family_of, resolve
from ng_core.models.generation import GenerationMixin
from ng_core.models.activity import Activity
from ng_core.models.hooks import HookSpec, StopForward, scoped_hooks, stored_weight
from ng_core.models.image_processing import ImageConfig, open_image, preprocess, resized_size, check_size, to_rgb
from ng_core.models.prompting import PromptMixin
from ng_core.models.reading import OcrReader, ReadingConfig

LLAVA15_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {{ message['content'] }} "
    "{% else %}ASSISTANT: {{ message['content'] }}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _sha(t: torch.Tensor) -> bytes:
    return hashlib.sha256(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).digest()


def without_paths(d):
    """``d`` (a config dict, nested) without its ``_name_or_path`` entries."""
    return {k: without_paths(v) for k, v in d.items() if k != "_name_or_path"} if isinstance(d, dict) else d


def square(img: Image.Image, side: int) -> Image.Image:
    """``img`` resized (shortest edge ``side``) and center-cropped to ``side`` x ``side``: every image of a
    model gets the same number of image tokens."""
    check_size(img.size)
    img = to_rgb(img)
    img = img.resize(resized_size(*img.size, side), resample=Image.BICUBIC)
    w, h = img.size
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def _field(v, k):
    return v.get(k) if isinstance(v, dict) else getattr(v, k, None)


def square_side(processor) -> int:
    """The square every image is brought to for ``processor``: the largest square "anyres" grid (LLaVA-NeXT and
    OneVision tile it), else its crop, else its size (an edge), else (a processor that sizes by pixel count, as
    Qwen's) the largest square within its maximum pixels on its patch grid, at most 448 then."""
    squares = [int(h) for h, w in (getattr(processor, "image_grid_pinpoints", None) or []) if h == w]
    if squares:
        return max(squares)
    crop, size = getattr(processor, "crop_size", None), getattr(processor, "size", None)
    pixel_count = (_field(size, "shortest_edge") or 0) > 2048  # Qwen: min/max pixels under the edge names
    for v, k in ((crop, "height"), (size, "height"), (size, "shortest_edge"), (size, "longest_edge")):
        n = _field(v, k) if v is not None else None
        if isinstance(n, int) and 0 < n <= 2048 and not pixel_count:
            return n
    max_pixels = getattr(processor, "max_pixels", None) or (_field(size, "longest_edge") if size is not None else None)
    factor = int(getattr(processor, "patch_size", 14) or 14) * int(getattr(processor, "merge_size", 1) or 1)
    if max_pixels:
        return max(factor, min(448, int(max_pixels ** 0.5) // factor * factor))
    return 448


def parse_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "auto": "auto"}
    key = str(dtype).lower()
    if key not in names:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(names))}")
    return names[key]


class HFVLMAdapter(PromptMixin, GenerationMixin, ModelAdapter):
    """A transformers image-text-to-text model, its tokenizer and image preprocessing, for one family."""

    def __init__(self, model, tokenizer, image_cfg: ImageConfig, model_id: str, source: str = "",
                 chat_template: str | None = None, image_token: str | None = None,
                 reading: ReadingConfig | None = None, image_processor=None, family: str | FamilySpec | None = None):
        self.spec = family if isinstance(family, FamilySpec) else family_of(family or model.config.model_type)
        self.family = self.spec.model_type
        self.model = model
        self.tokenizer = tokenizer
        self.image_cfg = image_cfg
        self.image_processor = image_processor
        if self.spec.pixels == "processor" and image_processor is None:
            raise ModelLoadError(f"a {self.spec.name} model needs its image processor")
        self.model_id = model_id
        self.source = source
        self.lock = threading.RLock()
        self.activity = Activity()  # requests' use of the model, for background work waiting its turn
        self.image_token = image_token or self.spec.image_token
        cfg_id = getattr(model.config, "image_token_id", None)
        if cfg_id is None:
            cfg_id = getattr(model.config, "image_token_index", None)
        self.image_token_id = int(cfg_id if cfg_id is not None else tokenizer.convert_tokens_to_ids(self.image_token))
        # the family's markers around the image (each wrap string may hold several special tokens)
        self.marker_ids = [int(i) for t in self.spec.image_wrap + self.spec.image_rows if t
                           for i in tokenizer(t, add_special_tokens=False)["input_ids"]]
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None) or LLAVA15_TEMPLATE
        self._list_content = "'type'" in self.chat_template or '"type"' in self.chat_template
        self.caches = ModelCaches()
        self.reading = reading or ReadingConfig()
        self._reader = OcrReader(self.reading) if self.reading.enabled else None
        self._fingerprint: str | None = None
        # The real decoder layers, kept: a capture (``kv.captured_layer_kwargs``, under the lock) briefly puts
        # stand-ins in the model's own list, and another thread resolving a place then must still find these.
        self._layers = getattr(self.lm, self.spec.layers_attr)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = {int(e) for e in eos if e is not None}
        if tokenizer.eos_token_id is not None:
            self.eos_ids.add(int(tokenizer.eos_token_id))
        for tok in ("<|im_end|>", "</s>", "<|eot_id|>", "<end_of_turn>"):
            tid = tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None and tid >= 0:
                if tok in self.chat_template:
                    self.eos_ids.add(tid)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_folder(cls, path, dtype=None, device_map=None, model_id: str | None = None,
                    reading: bool | ReadingConfig | None = None, offload_folder=None) -> "HFVLMAdapter":
        """Load a transformers checkpoint folder of a supported family (detected from its ``config.json``).

        ``reading`` overrides the folder's ``reading.json`` (on/off, or a whole config). ``offload_folder``: where
        accelerate keeps the weights a ``device_map`` sends to ``"disk"``. Nothing is downloaded.
        """
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(
                f"model folder not found: {folder}. Give 'ng-mini-llava', 'tiny-random[:family]', or a local "
                f"checkpoint folder of a supported family ({', '.join(FAMILIES)}) with config.json, "
                "*.safetensors and tokenizer files.")
        if not (folder / "config.json").exists():
            raise ModelLoadError(f"{folder} has no config.json: not a transformers model folder")
        try:
            cfg = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        except Exception as e:
            raise ModelLoadError(f"cannot read {folder / 'config.json'}: {e}") from None
        mtype = getattr(cfg, "model_type", "?")
        if mtype not in FAMILIES:
            raise ModelLoadError(f"{folder} holds a '{mtype}' model; supported vision-language families: "
                                 f"{', '.join(FAMILIES)}")
        spec = FAMILIES[mtype]
        kw = {"local_files_only": True}
        torch_dtype = parse_dtype(dtype)
        if torch_dtype is not None:
            kw["dtype"] = torch_dtype
        if device_map is not None:
            kw["device_map"] = device_map
        if offload_folder is not None:
            kw["offload_folder"] = str(offload_folder)
        try:
            model = getattr(transformers, spec.model_class).from_pretrained(folder, **kw)
            tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            proc = (None if spec.pixels == "project"
                    else transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True))
        except Exception as e:
            raise ModelLoadError(f"cannot load the {spec.name} model in {folder}: {type(e).__name__}: {e}") from None
        template = getattr(tok, "chat_template", None)
        if not template:
            for name in ("chat_template.jinja", "chat_template.json"):
                p = folder / name
                if p.exists():
                    text = p.read_text()
                    template = json.loads(text)["chat_template"] if name.endswith(".json") else text
                    break
        rcfg = reading if isinstance(reading, ReadingConfig) else ReadingConfig.from_folder(folder)
        if reading is not None and not isinstance(reading, ReadingConfig) and bool(reading) != rcfg.enabled:
            rcfg = dataclasses.replace(rcfg, enabled=bool(reading))
        img_cfg = ImageConfig.from_folder(folder) if proc is None else ImageConfig(
            size=square_side(proc), crop=square_side(proc))
        return cls(model, tok, img_cfg, model_id or str(folder), str(folder), chat_template=template, reading=rcfg,
                   image_processor=proc, family=spec)

    def family_info(self) -> dict:
        """The family's name and what has been verified for it (the Model page and ``ng model`` show it)."""
        return {"family": self.family, "family_name": self.spec.name,
                "verified": {"loads": "loads" in self.spec.verified, "tiny random build": "tiny" in self.spec.verified,
                             "real weights": "real" in self.spec.verified}}

    # ------------------------------------------------------------------ places
    @property
    def lm(self) -> nn.Module:
        """The decoder stack (``embed_tokens``, ``layers``, ``norm``), where the family keeps it."""
        return resolve(self.model, self.spec.lm_path)

    @property
    def layers(self) -> nn.ModuleList:
        """The decoder layers: always the real ones, also while a capture's stand-ins run on another thread."""
        return self._layers

    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def n_layers(self) -> int:
        return int(self.text_config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def ffn_size(self) -> int:
        return int(self.down_proj(0).in_features)

    def layer_module(self, layer: int) -> nn.Module:
        self.check_layer(layer)
        return self.layers[layer]

    def down_proj(self, layer: int) -> nn.Linear:
        m = resolve(self.layer_module(layer), self.spec.down_proj_path)
        if type(m) is not nn.Linear:
            ok = [i for i in range(self.n_layers)
                  if type(resolve(self.layers[i], self.spec.down_proj_path)) is nn.Linear]
            raise ValueError(
                f"layer {layer} cannot be edited: its {self.spec.down_proj_path} is a {type(m).__name__}, not a dense "
                f"nn.Linear (mixture-of-experts, adapter-wrapped or cross-attention layers are not edited); "
                f"editable layers: {ok or 'none'}")
        return m

    @property
    def input_device(self) -> torch.device:
        return self.lm.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm.embed_tokens.weight.dtype

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def fingerprint(self) -> str:
        """A hash of the config (less ``_name_or_path``: same weights, same fingerprint wherever they are cached)
        and a strided sample of every weight: cheap even for 7B models."""
        if self._fingerprint is None:
            h = hashlib.sha256(json.dumps(without_paths(self.model.config.to_dict()), sort_keys=True,
                                          default=str).encode())
            for name, p in self.model.named_parameters():
                if p.device.type == "meta":  # offloaded by accelerate: its CPU or disk copy
                    owner, _, leaf = name.rpartition(".")
                    p = stored_weight(self.model.get_submodule(owner), leaf)
                h.update(name.encode())
                h.update(str(tuple(p.shape)).encode())
                flat = p.detach().reshape(-1)
                step = max(1, flat.numel() // 4096)
                h.update(_sha(flat[::step][:4096]))
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # ------------------------------------------------------------------ images
    def pixel_inputs(self, image) -> dict:
        """What the model's own forward takes for ``image``: ``pixel_values`` and, per family, the image's
        geometry (``image_grid_thw``, ``image_sizes``)."""
        img = open_image(image)
        if self.spec.pixels == "project":
            return {"pixel_values": preprocess(img, self.image_cfg)}
        out = self.image_processor(images=[square(img, self.image_cfg.crop)], return_tensors="pt")
        return {k: out[k] for k in ("pixel_values",) + tuple(self.spec.image_kwargs)}

    def feature_key(self, image, px: dict | None = None) -> str:
        """The shared feature cache's key for ``image``: a hash of its preprocessed pixels."""
        px = self.pixel_inputs(image) if px is None else px
        return hashlib.sha1(px["pixel_values"].contiguous().numpy().tobytes()).hexdigest()

    def encode_image(self, image) -> torch.Tensor:
        """Projected image features [N_img, d] (no grad), cached by pixel content."""
        px = self.pixel_inputs(image)
        key = self.feature_key(image, px)
        with self.lock:
            if key in self.caches.features:
                self.caches.features.move_to_end(key)
                return self.caches.features[key]
            feats = self._encode_pixels(px)
            self.caches.features[key] = feats
            while len(self.caches.features) > 64:
                self.caches.features.popitem(last=False)
            return feats

    def encode_image_uncached(self, image) -> torch.Tensor:
        """Like :meth:`encode_image` but always runs the vision tower (the reference schedule's cost)."""
        with self.lock:
            return self._encode_pixels(self.pixel_inputs(image))

    def _encode_pixels(self, px: dict) -> torch.Tensor:
        base = self.model.model
        tower = next(getattr(base, n) for n in ("vision_tower", "visual", "vision_model") if hasattr(base, n))
        dev, vdtype = next(tower.parameters()).device, next(tower.parameters()).dtype
        kw = {k: (v.to(dev, vdtype) if k == "pixel_values" else v.to(dev)) for k, v in px.items()}
        with torch.no_grad():
            out = base.get_image_features(**kw)
        feats = family_inputs.flat(out.pooler_output if hasattr(out, "pooler_output") else out)
        if self.spec.deepstack:  # [N, d * (1 + k)]: the features, then what the decoder adds after layer 0..k-1
            feats = torch.cat([feats] + [family_inputs.flat(f) for f in out.deepstack_features], dim=-1)
        return feats.to(self.input_device, self.dtype)

    @property
    def image_geometry(self) -> dict:
        """What the processor says about every image of this model besides its pixels (``image_grid_thw``,
        ``image_sizes``): the same for all, since every image is brought to the same square first."""
        if not hasattr(self, "_geometry"):
            px = self.pixel_inputs(Image.new("RGB", (self.image_cfg.crop,) * 2))
            self._geometry = {k: v for k, v in px.items() if k != "pixel_values"}
        return self._geometry

    @property
    def n_image_tokens(self) -> int:
        if not hasattr(self, "_n_img"):
            self._n_img = int(self.encode_image(Image.new("RGB", (self.image_cfg.crop,) * 2)).shape[0])
        return self._n_img

    # ------------------------------------------------------------------ reading
    @property
    def reads(self) -> bool:
        """True when this model reads the text in its images (OCR lines in the prompt)."""
        return self._reader is not None

    @staticmethod
    def content_key(img) -> str:
        """A key for an opened image's full-resolution pixels (what the OCR sees)."""
        h = hashlib.sha1(f"{img.mode}{img.size}".encode())
        h.update(img.tobytes())
        return h.hexdigest()

    def read_image(self, image) -> str | None:
        """The reading block for ``image`` (None when this model does not read, or nothing was read).

        Cached by pixel content. This cache is shared: call it for dataset files only; in-memory
        uploads go through :func:`ng_core.models.imagecache.read`, which keeps them out of it.
        """
        if self._reader is None or image is None:
            return None
        img = open_image(image)
        key = self.content_key(img)
        with self.lock:
            if key in self.caches.readings:
                self.caches.readings.move_to_end(key)
                return self.caches.readings[key]
        text = self.read_image_uncached(img)
        self._keep_reading(key, text)
        return text

    def _keep_reading(self, key: str, text: str | None) -> None:
        with self.lock:
            self.caches.readings[key] = text
            self.caches.readings.move_to_end(key)
            while len(self.caches.readings) > 256:
                self.caches.readings.popitem(last=False)

    @property
    def reading_id(self) -> str | None:
        """What a reading depends on besides the pixels (the reader's settings, the OCR package's version), as a
        short hash; None when this model does not read. Stored readings are reused only under the same id."""
        if self._reader is None:
            return None
        cfg = {k: v for k, v in dataclasses.asdict(self.reading).items() if k != "threads"}
        try:
            version = importlib.metadata.version(self.reading.engine)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        return hashlib.sha256(json.dumps([cfg, version], sort_keys=True).encode()).hexdigest()[:16]

    def remember_reading(self, image, text: str | None) -> None:
        """Put a reading this reader made before of ``image`` (a dataset file: the cache is shared) into the cache."""
        if self._reader is not None:
            self._keep_reading(self.content_key(open_image(image)), text)

    def read_image_uncached(self, image) -> str | None:
        """Like :meth:`read_image`, never cached."""
        if self._reader is None or image is None:
            return None
        with self.activity.using():
            return self._reader.read_block(open_image(image))

    def warm_reader(self) -> None:
        """Build the OCR engine now (its ONNX sessions and their threads), so neither a request nor a background
        job pays for it at its first reading (no-op when the model does not read)."""
        if self._reader is not None:
            self._reader.ready()

    # ------------------------------------------------------------------ positions and family inputs
    def with_positions(self, seq: Sequence) -> Sequence:
        """``seq`` with its rotary positions when the family's are not token indices (from the model itself)."""
        if self.spec.positions == "mrope":
            grid = self.image_geometry["image_grid_thw"] if len(seq.image_positions) else None
            family_inputs.set_rope(self.model.model, seq, grid)
        return seq

    def model_positions(self, batch: Batch) -> torch.Tensor:
        """The position ids the model's forward takes for ``batch`` (whose ``position_ids`` are token indices)."""
        return family_inputs.mrope_positions(batch) if self.spec.positions == "mrope" else batch.position_ids

    def token_types(self, batch: Batch) -> torch.Tensor:
        """[B, T] long: 1 at image tokens, 0 elsewhere (padding included), for families whose masks read them."""
        return family_inputs.image_token_mask(batch).long()

    # ------------------------------------------------------------------ running
    @contextmanager
    def hooked(self, specs: list[HookSpec]):
        """Hold the model for one block of work with ``specs`` attached (always removed)."""
        with self.activity.using(), self.lock, scoped_hooks(specs):
            yield

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.embed_tokens(ids.to(self.input_device))

    def _decode(self, embeds, batch: Batch, cache, use_cache: bool):
        """The family's own forward (masks, positions, token types, DeepStack features) from input embeddings."""
        kw = {}
        if self.spec.token_types:
            kw[self.spec.token_types] = self.token_types(batch)
        runner = self.model.model
        if self.spec.deepstack:  # the decoder adds them itself after its first layers (the top model would not)
            runner = self.lm
            kw["visual_pos_masks"], kw["deepstack_visual_embeds"] = family_inputs.deepstack_inputs(batch)
        return runner(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                      position_ids=self.model_positions(batch), cache=cache, use_cache=use_cache, **kw)

    @property
    def sliding_window(self) -> int | None:
        """The smallest attention window among the layers whose cache slides (None: every layer sees everything),
        as the family's own cache sets them up: Gemma 3's sliding layers (``layer_types``), every layer of a
        Mistral whose config sets ``sliding_window`` without them."""
        w = [int(layer.sliding_window) for layer in self.new_cache().layers if getattr(layer, "is_sliding", False)]
        return min(w) if w else None

    def check_window(self, batch: Batch) -> None:
        """Refuse a padded batch longer than the sliding window: the window counts cache slots, padding included,
        so a padded row would see fewer real tokens than alone (the fast schedules and batched answers are
        exact only within the window)."""
        mask = batch.attention_mask
        if bool(mask.all()):
            return
        w = self.sliding_window
        if w is not None and mask.shape[1] > w:
            raise ValueError(f"a padded batch spans {mask.shape[1]} tokens, more than this model's "
                             f"sliding attention window ({w}); run these rows one at a time or shorter")

    def forward(self, batch: Batch, cache=None, use_cache: bool = False):
        """Final-norm hidden states [B, T, d] (and the cache when ``use_cache``)."""
        self.check_window(batch)
        out = self._decode(batch.embeds, batch, cache, use_cache)
        if use_cache:
            return out.last_hidden_state, out.cache
        return out.last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        head = resolve(self.model, self.spec.head_path)
        return head(hidden.to(head.weight.device, head.weight.dtype))

    def hidden_entering(self, layer: int, batch: Batch) -> torch.Tensor:
        """The residual stream entering decoder layer ``layer``, without running the layers above."""
        self.check_layer(layer)
        box = {}

        def grab(module, args, kwargs):
            box["h"] = args[0] if args else kwargs["hidden_states"]
            raise StopForward

        with torch.no_grad(), self.hooked([self.hook(f"blocks.{layer}.hook_resid_pre", grab, "capture")]):
            try:
                self.forward(batch)
            except StopForward:
                pass
        return box["h"]

    def run_layers(self, hidden: torch.Tensor, start: int, batch: Batch, cache=None,
                   keep_inputs: list | None = None) -> torch.Tensor:
        """Decoder layers ``start..L-1`` and the final norm on ``hidden`` (parity with :meth:`forward` tested).

        The layers get the masks, position embeddings and position ids the model's own forward gives them
        (captured, :func:`ng_core.models.kv.captured_layer_kwargs`). ``cache`` takes the keys/values of layers
        ``start..``; if it holds a prefix there, ``batch`` continues it (``batch.attention_mask`` spans prefix
        and tail). ``keep_inputs``: a list that receives the residual stream entering each layer run, in order."""
        self.check_layer(start)
        self.check_window(batch)
        with self.lock:
            captured = kv.captured_layer_kwargs(
                self.lm, self.spec.layers_attr, lambda c: self._decode(hidden, batch, c, False), cache, start,
                self.text_config, hidden.shape[0])
            after = None
            if self.spec.deepstack:
                mask, extra = family_inputs.deepstack_inputs(batch)
                if mask is not None:  # what the decoder adds after its first layers, by its own code
                    def after(i, h):
                        return self.lm._deepstack_process(h, mask, extra[i]) if i < len(extra) else h
            h = kv.replay(self.layers, captured, hidden, start, self.n_layers, cache, after, keep_inputs)
            return getattr(self.lm, self.spec.norm_attr)(h)

    # ------------------------------------------------------------------ key/value caches
    def new_cache(self):
        return kv.new_cache(self.text_config)

    def cache_snapshot(self, cache) -> list:
        return kv.snapshot(cache)

    def cache_restore(self, cache, snap: list, clone: bool = False) -> None:
        kv.restore(cache, snap, clone)

    def cache_from_snapshot(self, snap: list):
        return kv.from_snapshot(self.text_config, snap)

    def cache_select_rows(self, cache, idx: torch.Tensor) -> None:
        kv.select_rows(cache, idx)

    def cache_expand_rows(self, cache, n: int, start: int = 0) -> None:
        kv.expand_rows(cache, n, start)
