"""Adapter for the transformers LLaVA family (``LlavaForConditionalGeneration``).

One code path serves the embedded default model, the tiny random test model and any
llava-hf checkpoint in a local folder (fp16/bf16, sharded with accelerate's
``device_map``). The model is never mutated: all runs go through :meth:`forward`,
:meth:`run_layers` and :meth:`generate`, with interventions attached as scoped hooks
while the adapter's lock is held, so two browser sessions sharing one loaded model
never see each other's gates or edits.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from ng_core.errors import ModelLoadError, PromptError, SubjectNotFoundError
from ng_core.models.hooks import HookSpec, StopForward, scoped_hooks
from ng_core.models.adapter import Batch, ModelAdapter, ModelCaches, Sequence
from ng_core.models.decoding import PrefixMemo, greedy_with_draft, prefix_kv, sample_next, shared_prefix_len
from ng_core.models.prompt_guard import (check_chars, check_length, check_max_new_tokens, check_text, escape_specials,
                           special_ids, special_strings)
from ng_core.models.image_processing import ImageConfig, open_image, preprocess
from ng_core.models.reading import OcrReader, ReadingConfig

LLAVA15_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {{ message['content'] }} "
    "{% else %}ASSISTANT: {{ message['content'] }}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass
class Generation:
    """One generated answer."""

    text: str
    token_ids: list
    prompt: str


def _sha(t: torch.Tensor) -> bytes:
    return hashlib.sha256(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).digest()


class LlavaAdapter(ModelAdapter):
    family = "llava"

    def __init__(self, model, tokenizer, image_cfg: ImageConfig, model_id: str, source: str = "",
                 chat_template: str | None = None, image_token: str = "<image>",
                 reading: ReadingConfig | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.image_cfg = image_cfg
        self.model_id = model_id
        self.source = source
        self.lock = threading.RLock()
        self.image_token = image_token
        self.image_token_id = int(model.config.image_token_id)
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None) or LLAVA15_TEMPLATE
        self._list_content = "'type'" in self.chat_template or '"type"' in self.chat_template
        self.caches = ModelCaches()
        self.reading = reading or ReadingConfig()
        self._reader = OcrReader(self.reading) if self.reading.enabled else None
        self._fingerprint: str | None = None
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = {int(e) for e in eos if e is not None}
        if tokenizer.eos_token_id is not None:
            self.eos_ids.add(int(tokenizer.eos_token_id))
        for tok in ("<|im_end|>", "</s>", "<|eot_id|>"):
            tid = tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None and tid >= 0:
                if tok in self.chat_template:
                    self.eos_ids.add(tid)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_folder(cls, path, dtype=None, device_map=None, model_id: str | None = None,
                    reading: bool | ReadingConfig | None = None) -> "LlavaAdapter":
        """Load a llava-hf folder. ``reading`` overrides the folder's ``reading.json`` (on/off, or a whole config)."""
        from transformers import AutoConfig, AutoTokenizer, LlavaForConditionalGeneration  # deferred: transformers is slow to import

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(
                f"model folder not found: {folder}. Give 'ng-mini-llava', 'tiny-random', or a local "
                "llava-hf checkpoint folder (with config.json, *.safetensors, tokenizer files)."
            )
        if not (folder / "config.json").exists():
            raise ModelLoadError(f"{folder} has no config.json: not a transformers model folder")
        try:
            cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
        except Exception as e:
            raise ModelLoadError(f"cannot read {folder / 'config.json'}: {e}") from None
        if getattr(cfg, "model_type", "") != "llava":
            raise ModelLoadError(
                f"{folder} holds a '{getattr(cfg, 'model_type', '?')}' model; this adapter serves the "
                "LLaVA family (LlavaForConditionalGeneration, model_type 'llava')"
            )
        torch_dtype = parse_dtype(dtype)
        kw = {"local_files_only": True}
        if torch_dtype is not None:
            kw["dtype"] = torch_dtype
        if device_map is not None:
            kw["device_map"] = device_map
        try:
            model = LlavaForConditionalGeneration.from_pretrained(folder, **kw)
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except Exception as e:
            raise ModelLoadError(f"cannot load the LLaVA model in {folder}: {type(e).__name__}: {e}") from None
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
        return cls(model, tok, ImageConfig.from_folder(folder), model_id or str(folder), str(folder),
                   chat_template=template, reading=rcfg)

    # ------------------------------------------------------------------ places
    @property
    def lm(self) -> nn.Module:
        """The decoder stack (a LlamaModel-like module with embed_tokens, layers, norm, rotary_emb)."""
        return self.model.model.language_model

    @property
    def text_config(self):
        return self.model.config.text_config

    @property
    def n_layers(self) -> int:
        return int(self.text_config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def ffn_size(self) -> int:
        return int(self.text_config.intermediate_size)

    def layer_module(self, layer: int) -> nn.Module:
        self.check_layer(layer)
        return self.lm.layers[layer]

    def down_proj(self, layer: int) -> nn.Linear:
        return self.layer_module(layer).mlp.down_proj

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
            h = hashlib.sha256(json.dumps(_without_paths(self.model.config.to_dict()), sort_keys=True,
                                          default=str).encode())
            for name, p in self.model.named_parameters():
                h.update(name.encode())
                h.update(str(tuple(p.shape)).encode())
                flat = p.detach().reshape(-1)
                step = max(1, flat.numel() // 4096)
                h.update(_sha(flat[::step][:4096]))
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # ------------------------------------------------------------------ images
    def feature_key(self, image, px: torch.Tensor | None = None) -> str:
        """The shared feature cache's key for ``image``: a hash of its preprocessed pixels."""
        px = preprocess(open_image(image), self.image_cfg) if px is None else px
        return hashlib.sha1(px.numpy().tobytes()).hexdigest()

    def encode_image(self, image) -> torch.Tensor:
        """Projected image features [N_img, d] (no grad), cached by pixel content."""
        px = preprocess(open_image(image), self.image_cfg)
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
            return self._encode_pixels(preprocess(open_image(image), self.image_cfg))

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
        with self.lock:
            self.caches.readings[key] = text
            while len(self.caches.readings) > 256:
                self.caches.readings.popitem(last=False)
        return text

    def read_image_uncached(self, image) -> str | None:
        """Like :meth:`read_image`, never cached."""
        if self._reader is None or image is None:
            return None
        return self._reader.read_block(open_image(image))

    def _encode_pixels(self, px: torch.Tensor) -> torch.Tensor:
        vt = self.model.model.vision_tower
        dev = next(vt.parameters()).device
        vdtype = next(vt.parameters()).dtype
        with torch.no_grad():
            out = self.model.model.get_image_features(pixel_values=px.to(dev, vdtype))
        feats = out.pooler_output if hasattr(out, "pooler_output") else out
        if isinstance(feats, (list, tuple)):
            feats = feats[0]
        return feats.reshape(-1, feats.shape[-1]).to(self.input_device, self.dtype)

    @property
    def n_image_tokens(self) -> int:
        if not hasattr(self, "_n_img"):
            self._n_img = int(self.encode_image(Image.new("RGB", (self.image_cfg.crop,) * 2)).shape[0])
        return self._n_img

    # ------------------------------------------------------------------ prompts
    def render(self, prompt: str, has_image: bool = True, reading: str | None = None) -> str:
        """The chat-templated prompt text, ending with the generation prompt.

        ``reading`` (a :func:`~ng_core.models.reading.reading_block`, from :meth:`read_image`)
        goes after the image and before the question, separated by a blank line.
        """
        text = f"{reading}\n\n{prompt}" if (reading and has_image) else prompt
        if self._list_content:
            content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": text}]
        else:
            content = (self.image_token + "\n" if has_image else "") + text
        tmpl = self._template()
        special = {k: getattr(self.tokenizer, k, None) for k in ("bos_token", "eos_token")}
        return tmpl.render(messages=[{"role": "user", "content": content}], add_generation_prompt=True,
                           **{k: (v or "") for k, v in special.items()})

    @property
    def context_length(self) -> int | None:
        """The language model's context in tokens (prompt, image and answer together)."""
        n = getattr(self.text_config, "max_position_embeddings", None)
        return int(n) if n else None

    @functools.cached_property
    def _specials(self) -> tuple[list[str], set[int]]:
        """The strings and ids of every special (control, image) token: never created by user text."""
        return special_strings(self.tokenizer, self.image_token), special_ids(self.tokenizer, self.image_token_id)

    def _template(self):
        """The chat template, compiled once (sandboxed, as transformers renders it)."""
        if getattr(self, "_compiled", None) is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment  # deferred: jinja2, only for a chat template

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise
            self._compiled = env.from_string(self.chat_template)
        return self._compiled

    def build(self, prompt: str, *, subject: str | None = None, answer: str | None = None,
              has_image: bool = True, subject_span: tuple[int, int] | None = None,
              reading: str | None = None) -> Sequence:
        """Tokenize one (image, prompt[, answer]) turn with exact image and subject positions.

        ``subject`` is located inside ``prompt`` (first exact occurrence, else first
        case-insensitive one); ``subject_span`` gives explicit character offsets in ``prompt``.
        ``reading`` is the image's reading block (:meth:`read_image`); the question stays last,
        so the subject is always found in the question, never in the text read off the image.
        """
        prompt = check_text(prompt)
        if not prompt.strip():
            raise PromptError("the prompt is empty")
        check_chars(prompt, self.context_length)
        # The user's question is plain text: special-token strings in it are escaped (same length).
        prompt = escape_specials(prompt, self._specials[0])
        if subject:
            subject = escape_specials(check_text(subject, "the subject"), self._specials[0])
        text = self.render(prompt, has_image, reading)
        p_start = text.rfind(prompt)
        if p_start < 0:  # the template rewrote the prompt (e.g. stripped it)
            p_start = text.rfind(prompt.strip())
            prompt = prompt.strip()
        char_span = None
        if subject_span is not None:
            char_span = (p_start + subject_span[0], p_start + subject_span[1])
        elif subject:
            i = prompt.find(subject)
            if i < 0:
                i = prompt.lower().find(subject.lower())
            if i < 0:
                raise SubjectNotFoundError(f"the prompt {prompt!r} does not contain its subject {subject!r}")
            char_span = (p_start + i, p_start + i + len(subject))
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        n_img = self.n_image_tokens if has_image else 0
        out_ids, img_pos, subj_tok, q_tok = [], [], None, None
        q0, q1, control = p_start, p_start + len(prompt), self._specials[1]
        for tid, (a, b) in zip(ids, offsets):
            if q_tok is None and a >= q0 and b > a:
                q_tok = len(out_ids)
            if tid in control and b > a and q0 <= a and b <= q1:
                raise PromptError(f"the prompt {prompt[:60]!r} would create the control token "
                                  f"{self.tokenizer.convert_ids_to_tokens(tid)!r}; remove it")
            if tid == self.image_token_id and has_image:
                img_pos.extend(range(len(out_ids), len(out_ids) + n_img))
                out_ids.extend([tid] * n_img)
                continue
            if char_span is not None and b > a and a < char_span[1] and b > char_span[0]:
                subj_tok = (len(out_ids), tid, a, b)
            out_ids.append(tid)
        if has_image and not img_pos:
            raise ModelLoadError(
                f"the chat template did not produce the image token {self.image_token!r}; cannot place the image"
            )
        subject_pos = None
        if char_span is not None:
            if subj_tok is None or subj_tok[3] < char_span[1]:
                raise SubjectNotFoundError(
                    f"cannot find the last token of subject {text[char_span[0]:char_span[1]]!r} in {prompt!r}"
                )
            subject_pos = subj_tok[0]
            piece = self.tokenizer.decode([subj_tok[1]]).strip()
            covered = text[subj_tok[2]:subj_tok[3]].strip()
            if piece.replace("▁", "") != covered.replace("▁", "") or not covered:
                raise SubjectNotFoundError(
                    f"token check failed for subject in {prompt!r}: token decodes to {piece!r}, "
                    f"text span is {covered!r}"
                )
        prompt_len = len(out_ids)
        check_length(prompt_len, self.context_length)
        targets = torch.empty(0, dtype=torch.long)
        if answer is not None:
            ans = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            if not ans:
                raise ValueError("the answer is empty")
            targets = torch.tensor(ans, dtype=torch.long)
            out_ids = out_ids + ans[:-1]
            check_length(prompt_len, self.context_length, len(ans))
        return Sequence(
            input_ids=torch.tensor(out_ids, dtype=torch.long),
            image_positions=torch.tensor(img_pos, dtype=torch.long),
            prompt_len=prompt_len,
            subject_pos=subject_pos,
            last_prompt_pos=prompt_len - 1,
            targets=targets,
            text=text,
            question_pos=q_tok or 0,
        )

    # ------------------------------------------------------------------ batching
    def embed(self, seq: Sequence, features: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings [T, d] with the image features spliced in at the image positions."""
        emb = self.lm.embed_tokens(seq.input_ids.to(self.input_device))
        if len(seq.image_positions):
            if features is None:
                raise ValueError("this sequence has image tokens but no image features were given")
            if features.shape[0] != len(seq.image_positions):
                raise ValueError(
                    f"{features.shape[0]} image features for {len(seq.image_positions)} image tokens"
                )
            emb = emb.clone()
            emb[seq.image_positions.to(emb.device)] = features.to(emb.device, emb.dtype)
        return emb

    def collate(self, seqs: list[Sequence], features: list, padding: str = "right") -> Batch:
        embs = [self.embed(s, f) for s, f in zip(seqs, features)]
        return self.collate_embeds(embs, seqs, padding)

    def collate_embeds(self, embs: list, seqs: list, padding: str = "right") -> Batch:
        T = max(e.shape[0] for e in embs)
        d = embs[0].shape[1]
        B = len(embs)
        out = embs[0].new_zeros(B, T, d)
        mask = torch.zeros(B, T, dtype=torch.long, device=out.device)
        pos = torch.zeros(B, T, dtype=torch.long, device=out.device)
        offsets = torch.zeros(B, dtype=torch.long)
        for i, e in enumerate(embs):
            n = e.shape[0]
            o = T - n if padding == "left" else 0
            out[i, o:o + n] = e
            mask[i, o:o + n] = 1
            pos[i, o:o + n] = torch.arange(n, device=out.device)
            offsets[i] = o
        return Batch(out, mask, pos, offsets, list(seqs))

    # ------------------------------------------------------------------ running
    @contextmanager
    def hooked(self, specs: list[HookSpec]):
        """Hold the model for one block of work with ``specs`` attached (always removed)."""
        with self.lock, scoped_hooks(specs):
            yield

    def forward(self, batch: Batch, cache=None, use_cache: bool = False):
        """Final-norm hidden states [B, T, d] (and the cache when ``use_cache``)."""
        out = self.lm(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask,
                      position_ids=batch.position_ids, cache=cache, use_cache=use_cache)
        if use_cache:
            return out.last_hidden_state, out.cache
        return out.last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.model.lm_head
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

        ``cache`` (a ``DynamicCache``) takes the keys/values of layers ``start..``; if it holds a prefix there,
        ``batch`` continues it (Stage C's shared prefix; ``batch.attention_mask`` spans prefix and tail).
        ``keep_inputs``: a list that receives the residual stream entering each layer run, in order."""
        from transformers.masking_utils import create_causal_mask  # deferred: transformers is slow to import

        lm = self.lm
        mask = create_causal_mask(config=lm.config, inputs_embeds=hidden, attention_mask=batch.attention_mask,
                                  cache=cache, position_ids=batch.position_ids, layer_idx=start)
        pe = lm.rotary_emb(hidden, position_ids=batch.position_ids)
        h = hidden
        for layer in lm.layers[start:lm.config.num_hidden_layers]:
            if keep_inputs is not None:
                keep_inputs.append(h)
            h = layer(h, attention_mask=mask, position_embeddings=pe, position_ids=batch.position_ids,
                      cache=cache, use_cache=cache is not None)
            h = h[0] if isinstance(h, tuple) else h
        return lm.norm(h)

    # ------------------------------------------------------------------ generation
    def generate(self, items: list, *, max_new_tokens: int = 32, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 0.9, repetition_penalty: float = 1.0,
                 seed: int | None = None, hooks_for=None, on_token=None, draft: list[int] | None = None,
                 prefix_memo: PrefixMemo | None = None, prefix_tag=None) -> list[Generation]:
        """Greedy (or seeded sampling) answers for ``items`` = [(features|None, prompt, subject|None[, reading])].

        Rows are left-padded and decoded together with a KV cache. ``hooks_for(batch)``
        returns the hook specs of active interventions (they see position ids, so a
        subject-position gate acts on the prompt pass only). ``on_token(texts)`` streams.

        ``draft`` (one greedy row only): token ids the answer probably starts with, e.g. the
        answer to the same input under slightly different gates. The model checks a whole
        run of draft tokens in one pass and keeps the ones it would have generated itself
        (greedy speculative decoding with the draft as the guess), so the result is the
        model's own greedy answer; only the number of passes changes. ``prefix_memo`` reuses the shared
        prompt start's keys/values computed before under the same ``prefix_tag`` (:class:`PrefixMemo`).
        """
        if not items:
            return []
        seqs, feats = [], []
        for it in items:
            f, prompt, subject, reading = (tuple(it) + (None, None))[:4]
            seqs.append(self.build(prompt, subject=subject, has_image=f is not None, reading=reading))
            feats.append(f)
        max_new_tokens = check_max_new_tokens(max_new_tokens, max(len(q) for q in seqs), self.context_length)
        batch = self.collate(seqs, feats, padding="left")
        gen = torch.Generator().manual_seed(int(seed)) if do_sample else None
        B = batch.size
        new_tokens = [[] for _ in range(B)]
        done = torch.zeros(B, dtype=torch.bool)
        suppress = [self.image_token_id]
        specs = hooks_for(batch) if hooks_for else []
        P = shared_prefix_len(seqs, feats)
        with torch.no_grad(), self.hooked(specs):
            if P:
                # The image, the lines read from it and the template before the question are the same for
                # every row: their keys/values are computed once (or reused) and expanded over the batch.
                cache, pre_mask = prefix_kv(self, seqs[0], feats[0], P, B, prefix_memo, prefix_tag)
                tail = self.collate_embeds([self.embed(s, f)[P:] for s, f in zip(seqs, feats)], seqs, padding="left")
                tail.position_ids = tail.position_ids + P
                tail.attention_mask = torch.cat([pre_mask, tail.attention_mask], dim=1)
                hidden, cache = self.forward(tail, cache=cache, use_cache=True)
                attn, pos = tail.attention_mask, tail.position_ids[:, -1]
            else:
                hidden, cache = self.forward(batch, use_cache=True)
                attn, pos = batch.attention_mask, batch.position_ids[:, -1]
            logits = self.logits(hidden[:, -1]).float()
            if draft is not None and B == 1 and not do_sample and repetition_penalty == 1.0:
                toks = greedy_with_draft(self, logits, cache, attn, pos, batch, seqs, list(draft), max_new_tokens,
                                               suppress, on_token)
                return [Generation(self.tokenizer.decode(toks, skip_special_tokens=True).strip(), toks, items[0][1])]
            for _ in range(max_new_tokens):
                logits[:, suppress] = -float("inf")
                if repetition_penalty != 1.0:
                    for i in range(B):
                        prev = torch.tensor(seqs[i].input_ids.tolist() + new_tokens[i], dtype=torch.long)
                        sc = logits[i, prev]
                        logits[i, prev] = torch.where(sc > 0, sc / repetition_penalty, sc * repetition_penalty)
                if do_sample:
                    nxt = sample_next(logits, temperature, top_p, gen)
                else:
                    nxt = logits.argmax(-1)
                nxt = nxt.cpu()
                for i in range(B):
                    if not done[i]:
                        t = int(nxt[i])
                        if t in self.eos_ids:
                            done[i] = True
                        else:
                            new_tokens[i].append(t)
                if on_token is not None:
                    on_token([self.tokenizer.decode(t, skip_special_tokens=True) for t in new_tokens])
                if bool(done.all()):
                    break
                nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
                pos = pos + 1
                attn = torch.cat([attn, (~done).long()[:, None].to(attn.device)], dim=1)
                step = Batch(self.lm.embed_tokens(nxt[:, None].to(self.input_device)), attn, pos[:, None],
                             batch.offsets, seqs)
                hidden, cache = self.forward(step, cache=cache, use_cache=True)
                logits = self.logits(hidden[:, -1]).float()
        return [Generation(self.tokenizer.decode(t, skip_special_tokens=True).strip(), t, it[1])
                for t, it in zip(new_tokens, items)]


def _raise(msg):
    raise ValueError(msg)


def _without_paths(d):
    """``d`` (a config dict, nested) without its ``_name_or_path`` entries."""
    return {k: _without_paths(v) for k, v in d.items() if k != "_name_or_path"} if isinstance(d, dict) else d


def parse_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "auto": "auto"}
    key = str(dtype).lower()
    if key not in names:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(names))}")
    return names[key]

