"""The user's question as plain text: it can never create image or chat control tokens.

Used in one place, :meth:`ng_core.models.hf_adapter.HFVLMAdapter.build`, for the question only (the
chat template and the reading block are the adapter's own). A special-token string typed by
a user (``<image>``, ``<|im_start|>``, ``</s>`` ...) is *escaped*: its bracket characters are
replaced by look-alike characters one for one, so the text keeps its length (subject offsets
stay valid) and reads the same, but no longer matches a special token. Text that is not valid
Unicode is refused; so are prompts and generation lengths over the limits.
"""
from __future__ import annotations

from ng_core.errors import PromptError

#: The most tokens one answer may have (``--max-new-tokens``, the dashboard's answer length).
MAX_NEW_TOKENS = 1024
#: Characters per context token allowed before tokenizing (a cheap cap; the exact check is in tokens).
CHARS_PER_TOKEN_CAP = 16

_LOOKALIKE = {"<": "\u2039", ">": "\u203a", "[": "\u2045", "]": "\u2046", "{": "\u2774", "}": "\u2775",
              "|": "\u01c0"}


def _defang(s: str) -> str:
    """``s`` with its markup characters replaced one for one (same length)."""
    out = [_LOOKALIKE.get(c, c) for c in s]
    if out == list(s):  # no markup: change the first character to its full-width form
        c = s[0]
        out[0] = chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\ufffd"
    return "".join(out)


def special_strings(tokenizer, image_token: str) -> list[str]:
    """Every string the tokenizer turns into a special or added control token, longest first."""
    found = {image_token}
    found.update(t for t in getattr(tokenizer, "all_special_tokens", []) if t)
    for tok in getattr(tokenizer, "added_tokens_decoder", {}).values():
        content = getattr(tok, "content", str(tok))
        if content and (getattr(tok, "special", False) or any(c in content for c in "<>[]|")):
            found.add(content)
    return sorted(found, key=len, reverse=True)


def special_ids(tokenizer, image_token_id: int) -> set[int]:
    ids = {int(image_token_id)}
    ids.update(int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None)
    for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items():
        content = getattr(tok, "content", "")
        if getattr(tok, "special", False) or any(c in content for c in "<>[]|"):
            ids.add(int(i))
    return ids


def check_text(text, what: str = "the prompt") -> str:
    """``text`` as a str that encodes as UTF-8, or a clear :class:`PromptError`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise PromptError(f"{what} is not valid UTF-8 (byte {e.start}: {e.reason})") from None
    if not isinstance(text, str):
        raise PromptError(f"{what} must be text, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise PromptError(f"{what} is not valid Unicode text (character {e.start}: {e.reason}); "
                          "was it decoded with the wrong encoding?") from None
    if "\x00" in text:
        raise PromptError(f"{what} contains a NUL character")
    return text


def escape_specials(text: str, specials: list[str]) -> str:
    """``text`` with every special-token string defanged (same length, see the module doc)."""
    for _ in range(8):
        before = text
        for s in specials:
            if s in text:
                text = text.replace(s, _defang(s))
        if text == before:
            break
    return text


def check_length(n_tokens: int, context: int | None, answer_tokens: int = 0) -> None:
    if context and n_tokens + answer_tokens > context:
        extra = f" plus {answer_tokens} answer tokens" if answer_tokens else ""
        raise PromptError(f"the prompt is {n_tokens} tokens (with the image and what was read off it){extra}; "
                          f"the model's context is {context} tokens: shorten the question")


def check_chars(text: str, context: int | None, what: str = "the prompt") -> None:
    if context and len(text) > CHARS_PER_TOKEN_CAP * context:
        raise PromptError(f"{what} is {len(text):,} characters; the limit is {CHARS_PER_TOKEN_CAP * context:,} "
                          f"({CHARS_PER_TOKEN_CAP} per token of the model's {context}-token context)")


def check_prompt(text, what: str = "the prompt", context: int | None = None, allow_empty: bool = False) -> str:
    """A prompt as it enters (``ng ask --prompt``, the dashboard's question box, a record built from them).

    Why: the same checks as when it is built, minus the tokenizer (valid Unicode, no NUL, not empty, not longer
    than ``context`` allows), so a bad prompt is refused where it is typed, not later inside an edit or a job.
    """
    text = check_text(text, what)
    if not allow_empty and not text.strip():
        raise PromptError(f"{what} is empty")
    check_chars(text, context, what)
    return text


def check_max_new_tokens(n, prompt_tokens: int = 0, context: int | None = None) -> int:
    """``n`` as the number of tokens to generate: a whole number in 1..MAX_NEW_TOKENS that fits the context."""
    if isinstance(n, bool) or not isinstance(n, int):
        try:
            if float(n) != int(n):
                raise ValueError
            n = int(n)
        except (TypeError, ValueError, OverflowError):
            raise PromptError(f"max_new_tokens must be a whole number, not {n!r}") from None
    if not 1 <= n <= MAX_NEW_TOKENS:
        raise PromptError(f"max_new_tokens is {n}; it must be between 1 and {MAX_NEW_TOKENS}")
    if context and prompt_tokens + n > context:
        raise PromptError(f"the prompt is {prompt_tokens} tokens and {n} new tokens were asked for; the model's "
                          f"context is {context} tokens: ask for at most {max(0, context - prompt_tokens)}")
    return n
