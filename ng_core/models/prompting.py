"""How the generic adapter turns a question into a token sequence, and sequences into a padded batch.

The chat template is the model's own; the image placeholder (and the family's start/end markers around
it) is expanded to the image's tokens in the token ids, so the image span is read off the expanded ids and
the subject's last token is found from character offsets that the expansion carries along, with a decode
cross-check. Control tokens and image placeholders typed by the user are escaped, never created.
"""
from __future__ import annotations

import functools

import torch

from ng_core.errors import ModelLoadError, PromptError, SubjectNotFoundError
from ng_core.models.adapter import Batch, Sequence
from ng_core.models.prompt_guard import check_chars, check_length, check_text, escape_specials, special_ids, special_strings


def _raise(msg):
    raise ValueError(msg)


class PromptMixin:
    """Rendering, building and batching for :class:`ng_core.models.hf_adapter.HFVLMAdapter`."""

    def render(self, prompt: str, has_image: bool = True, reading: str | None = None) -> str:
        """The chat-templated prompt text, ending with the generation prompt.

        ``reading`` (a :func:`~ng_core.models.reading.reading_block`, from :meth:`read_image`)
        goes after the image and before the question, separated by a blank line.
        """
        text = f"{reading}\n\n{prompt}" if (reading and has_image) else prompt
        if self._list_content:
            content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": text}]
        else:
            wrap = self.spec.image_wrap
            content = (wrap[0] + self.image_token + wrap[1] + self.spec.image_newline if has_image else "") + text
        tmpl = self._template()
        special = {k: getattr(self.tokenizer, k, None) for k in ("bos_token", "eos_token")}
        out = tmpl.render(messages=[{"role": "user", "content": content}], add_generation_prompt=True,
                          **{k: (v or "") for k, v in special.items()})
        if self._list_content and has_image and self.spec.template_image:
            # the family's own template writes a short placeholder; its processor writes the image's markup there
            placeholder, markup = self.spec.template_image
            out = out.replace(placeholder, markup, 1)
        return out

    @property
    def context_length(self) -> int | None:
        """The language model's context in tokens (prompt, image and answer together)."""
        n = getattr(self.text_config, "max_position_embeddings", None)
        return int(n) if n else None

    @functools.cached_property
    def _specials(self) -> tuple[list[str], set[int]]:
        """The strings and ids of every special (control, image) token: never created by user text."""
        strings = special_strings(self.tokenizer, self.image_token)
        extra = [t for t in self.spec.image_wrap if t and t not in strings]
        return (sorted(strings + extra, key=len, reverse=True),
                special_ids(self.tokenizer, self.image_token_id) | set(self.marker_ids))

    def _template(self):
        """The chat template, compiled once (sandboxed, as transformers renders it)."""
        if getattr(self, "_compiled", None) is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment  # deferred: optional jinja2, chat templates only

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
                block = self.image_block(n_img)
                img_pos.extend(len(out_ids) + j for j, t in enumerate(block) if t == tid)
                out_ids.extend(block)
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
        seq = Sequence(
            input_ids=torch.tensor(out_ids, dtype=torch.long),
            image_positions=torch.tensor(img_pos, dtype=torch.long),
            prompt_len=prompt_len,
            subject_pos=subject_pos,
            last_prompt_pos=prompt_len - 1,
            targets=targets,
            text=text,
            question_pos=q_tok or 0,
        )
        return self.with_positions(seq)

    def image_block(self, n: int) -> list[int]:
        """The token ids one image placeholder expands to: ``n`` image tokens, or for a family that lays the
        image out in rows (Mistral3/Pixtral), each row's tokens followed by a row break, the last by an end."""
        if not self.spec.image_rows:
            return [self.image_token_id] * n
        side = int(round(n ** 0.5))  # every image is brought to a square first
        brk, end = (int(self.tokenizer.convert_tokens_to_ids(t)) for t in self.spec.image_rows)
        rows = [[self.image_token_id] * side + [brk] for _ in range(side)]
        rows[-1][-1] = end
        return [t for r in rows for t in r]

    # ------------------------------------------------------------------ batching
    def embed(self, seq: Sequence, features: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings [T, d] with the image features spliced in at the image positions."""
        emb = self.embed_ids(seq.input_ids)
        if len(seq.image_positions):
            if features is None:
                raise ValueError("this sequence has image tokens but no image features were given")
            if features.shape[0] != len(seq.image_positions):
                raise ValueError(
                    f"{features.shape[0]} image features for {len(seq.image_positions)} image tokens"
                )
            d = emb.shape[-1]
            if features.shape[-1] > d:  # DeepStack: the decoder adds the rest after its first layers
                seq.deepstack = features[:, d:].reshape(features.shape[0], -1, d)
            emb = emb.clone()
            emb[seq.image_positions.to(emb.device)] = features[:, :d].to(emb.device, emb.dtype)
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

