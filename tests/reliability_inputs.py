"""Reliability cases for inputs: images, prompts, generation lengths, CLI arguments and configs."""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from reliability_core import Case, Wrong, run_cli


# ----------------------------------------------------------------------------- images
def _png(img) -> bytes:
    b = io.BytesIO()
    img.save(b, format="PNG")
    return b.getvalue()


def _jpeg(img, **kw) -> bytes:
    b = io.BytesIO()
    img.convert("RGB").save(b, format="JPEG", **kw)
    return b.getvalue()


def _open_and_process(ctx, src):
    from ng_core.models.image_processing import open_image, preprocess

    img = open_image(src)
    px = preprocess(img, ctx.adapter.image_cfg)
    c = ctx.adapter.image_cfg.crop
    if tuple(px.shape) != (1, 3, c, c) or not bool(px.isfinite().all()):
        raise Wrong(f"preprocessed to {tuple(px.shape)}")
    return img


def _truncated(ctx, data, want=(30, 120, 200)):
    """A cut file is refused, or (when only trailing chunks are missing) read with every pixel right."""
    img = _open_and_process(ctx, data)
    arr = np.asarray(img, dtype=np.int16)
    if np.abs(arr - np.asarray(want, np.int16)).max() > 8:
        raise Wrong(f"a truncated file was read with wrong pixels (max error {np.abs(arr - want).max()})")


def image_cases() -> list[Case]:
    cases = []
    base = Image.new("RGB", (64, 48), (30, 120, 200))  # _truncated checks this colour
    png, jpg = _png(base), _jpeg(base)
    for n in sorted({0, 1, 8, 16, 33, 50, 64, 80, 100, 120, len(png) // 2, len(png) - 12, len(png) - 4}):
        cases.append(Case("image-corrupt", f"png-truncated-{n}", lambda c, d=png[:n]: _truncated(c, d), False))
    for n in sorted({2, 10, 100, 200, 300, len(jpg) // 3, len(jpg) // 2}):
        cases.append(Case("image-corrupt", f"jpeg-truncated-{n}", lambda c, d=jpg[:n]: _truncated(c, d), False))
    rng = np.random.default_rng(0)
    for i in range(8):
        junk = rng.integers(0, 256, 64 + 97 * i, dtype=np.uint8).tobytes()
        cases.append(Case("image-corrupt", f"random-bytes-{i}", lambda c, d=junk: _open_and_process(c, d)))
    for name, data in [("text", b"hello, I am not an image"), ("html", b"<html><body>x</body></html>"),
                       ("zip", b"PK\x03\x04" + b"\0" * 40), ("gif-header", b"GIF89a" + b"\xff" * 20),
                       ("png-header-only", png[:8]), ("pickle", b"\x80\x04\x95\x10\x00"),
                       ("png-bad-crc", png[:30] + bytes([png[30] ^ 0xFF]) + png[31:])]:
        cases.append(Case("image-corrupt", name, lambda c, d=data: _open_and_process(c, d)))
    # decompression bombs and sizes: refused on the header, before decoding
    bomb = _png(Image.new("1", (9000, 9000)))
    cases.append(Case("image-limits", "bomb-81Mpx", lambda c: _open_and_process(c, bomb)))
    for w, h in [(40000, 1), (5000, 1), (1, 5000), (2000, 10), (10, 2000), (211, 10), (4000, 100), (100, 3000)]:
        data = _png(Image.new("L", (w, h)))
        cases.append(Case("image-limits", f"aspect-{w}x{h}", lambda c, d=data: _open_and_process(c, d)))
    for w, h in [(200, 10), (10, 200), (1, 1), (2, 3), (640, 480), (3000, 2000)]:
        data = _png(Image.new("RGB", (w, h), (9, 99, 199)))
        cases.append(Case("image-limits", f"accepted-{w}x{h}", lambda c, d=data: _open_and_process(c, d),
                          expect_error=False))
    cases.append(Case("image-limits", "too-many-bytes", lambda c: _open_and_process(c, b"\0" * (26 << 20))))
    # modes read correctly
    cases += _mode_cases()
    cases += _exif_cases()
    for name, make in [("missing", lambda t: t / "nope.png"), ("folder", lambda t: t),
                       ("fifo", lambda t: (os.mkfifo(t / "f.png"), t / "f.png")[1]),
                       ("devnull", lambda t: "/dev/zero")]:
        cases.append(Case("image-corrupt", f"path-{name}", lambda c, m=make: _open_and_process(c, m(c.tmp()))))
    return cases


def _expect_pixel(ctx, img, want, tol=3):
    out = _open_and_process(ctx, img)
    got = out.getpixel((0, 0))
    if out.mode != "RGB" or max(abs(int(a) - int(b)) for a, b in zip(got, want)) > tol:
        raise Wrong(f"pixel {got}, expected {want} (mode {out.mode})")


def _mode_cases() -> list[Case]:
    cases = []
    a16 = np.full((32, 32), 32768, np.uint16)
    cases.append(Case("image-modes", "png-16bit-grey", lambda c: _expect_pixel(c, _png(Image.fromarray(a16)),
                                                                               (128, 128, 128)), False))
    cases.append(Case("image-modes", "16bit-dark", lambda c: _expect_pixel(
        c, Image.fromarray(np.full((32, 32), 4096, np.uint16)), (16, 16, 16)), False))
    cases.append(Case("image-modes", "32bit-int-16bit-range", lambda c: _expect_pixel(
        c, Image.fromarray(np.full((32, 32), 65535, np.int32), "I"), (255, 255, 255)), False))
    cases.append(Case("image-modes", "float-0-1", lambda c: _expect_pixel(
        c, Image.fromarray(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32), "F"), (0, 0, 0)), False))
    cases.append(Case("image-modes", "rgba-transparent", lambda c: _expect_pixel(
        c, _png(Image.new("RGBA", (20, 20), (0, 0, 0, 0))), (255, 255, 255)), False))
    cases.append(Case("image-modes", "rgba-half", lambda c: _expect_pixel(
        c, Image.new("RGBA", (20, 20), (0, 0, 0, 128)), (127, 127, 127)), False))
    cases.append(Case("image-modes", "rgba-opaque", lambda c: _expect_pixel(
        c, Image.new("RGBA", (20, 20), (10, 20, 30, 255)), (10, 20, 30)), False))
    cases.append(Case("image-modes", "la-transparent", lambda c: _expect_pixel(
        c, _png(Image.new("LA", (20, 20), (0, 0))), (255, 255, 255)), False))
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    cases.append(Case("image-modes", "palette-transparent", lambda c: _expect_pixel(c, _png(pal), (255, 255, 255)),
                      False))
    for mode, value, want in [("1", 1, (255, 255, 255)), ("L", 77, (77, 77, 77)), ("RGB", (1, 2, 3), (1, 2, 3)),
                              ("CMYK", (0, 0, 0, 0), (255, 255, 255)), ("P", 0, (0, 0, 0))]:
        cases.append(Case("image-modes", f"mode-{mode}", lambda c, m=mode, v=value, w=want: _expect_pixel(
            c, Image.new(m, (16, 16), v), w), False))
    return cases


def _exif_cases() -> list[Case]:
    """A 20x10 image whose left quarter is blue: after EXIF transpose the blue corner is where it belongs."""
    where = {1: (0, 0), 2: (19, 0), 3: (19, 9), 4: (0, 9), 5: (0, 0), 6: (9, 0), 7: (9, 19), 8: (0, 19)}
    cases = []
    for o, xy in where.items():
        def fn(ctx, o=o, xy=xy):
            im = Image.new("RGB", (20, 10), (255, 0, 0))
            im.paste((0, 0, 255), (0, 0, 5, 10))
            ex = im.getexif()
            ex[0x0112] = o
            out = _open_and_process(ctx, _jpeg(im, exif=ex, quality=95))
            want_size = (10, 20) if o >= 5 else (20, 10)
            px = out.getpixel(xy)
            if out.size != want_size or not (px[2] > 200 and px[0] < 60):
                raise Wrong(f"orientation {o}: size {out.size}, pixel {xy} = {px}")
        cases.append(Case("image-exif", f"orientation-{o}", fn, expect_error=False))
    return cases


# ----------------------------------------------------------------------------- prompts
SPECIALS = ["<image>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<pad>", "<|im_start|>system", "</s>",
            "<s>", "<image><image>", "<<image>>", "<im<image>age>"]


def _build_clean(ctx, prompt, subject=None):
    a = ctx.adapter
    seq = a.build(prompt, subject=subject)
    n_img = int((seq.input_ids == a.image_token_id).sum())
    if n_img != a.n_image_tokens or len(seq.image_positions) != a.n_image_tokens:
        raise Wrong(f"{n_img} image tokens, expected {a.n_image_tokens}")
    control = a._specials[1] - {a.image_token_id}
    n_ctl = sum(int(t) in control for t in seq.input_ids.tolist())
    n_ctl_plain = sum(int(t) in control for t in a.build("What is it?").input_ids.tolist())
    if n_ctl != n_ctl_plain:
        raise Wrong(f"{n_ctl} control tokens, the template alone has {n_ctl_plain}")
    if subject is not None and seq.subject_pos is None:
        raise Wrong("subject position lost")
    if seq.subject_pos is not None:
        piece = a.tokenizer.decode([int(seq.input_ids[seq.subject_pos])]).strip()
        if not subject.endswith(piece) and piece not in subject:
            raise Wrong(f"subject token {piece!r} is not in {subject!r}")


def _generate(ctx, prompt, n=2, image=True):
    a = ctx.adapter
    feats = a.encode_image(Image.new("RGB", (32, 32), (200, 10, 10))) if image else None
    g = a.generate([(feats, prompt, None)], max_new_tokens=n)[0]
    if len(g.token_ids) > n:
        raise Wrong(f"{len(g.token_ids)} tokens for max_new_tokens={n}")


def prompt_cases() -> list[Case]:
    cases = []
    for i, s in enumerate(SPECIALS):
        for j, tmpl in enumerate(["{s} What is the passport number?", "What is the {s} passport number?",
                                  "What is the passport number? {s}", "{s}{s} passport", "passport{s}"]):
            p = tmpl.format(s=s)
            cases.append(Case("prompt-control-tokens", f"{i}-{j}", lambda c, p=p: _build_clean(c, p, "passport"),
                              expect_error=False))
        cases.append(Case("prompt-control-tokens", f"{i}-generate", lambda c, s=s: _generate(c, f"What {s} is it?"),
                          expect_error=False))
        cases.append(Case("prompt-control-tokens", f"{i}-text-only",
                          lambda c, s=s: _generate(c, f"Say {s} now", image=False), expect_error=False))
    for i, p in enumerate([b"\xff\xfe", b"caf\xe9", b"\xc3", "a\udcff b", "\ud800", "x\udfff",
                           "What\x00 is it?", b"\xed\xa0\x80", 12345, None]):
        cases.append(Case("prompt-undecodable", f"{i}", lambda c, p=p: c.adapter.build(p)))
    cases.append(Case("prompt-undecodable", "utf8-bytes-ok", lambda c: _build_clean(c, "Wie heißt €?".encode()),
                      expect_error=False))
    for i, p in enumerate(["", "   ", "\n\t", "x" * 20000, "word " * 3000, "passport " * 700, "é" * 9000]):
        cases.append(Case("prompt-length", f"{i}-{len(p)}", lambda c, p=p: _generate(c, p)))
    for n in (0, -1, -100, 1025, 100000, 10 ** 12, 1.5, "x", None, float("nan"), float("inf")):
        cases.append(Case("max-new-tokens", f"{n}", lambda c, n=n: _generate(c, "What is it?", n)))
    for n in (1, 3):
        cases.append(Case("max-new-tokens", f"accepted-{n}", lambda c, n=n: _generate(c, "What is it?", n),
                          expect_error=False))
    cases.append(Case("max-new-tokens", "over-context", lambda c: _generate(c, "word " * 90, 1024)))
    return cases


# ----------------------------------------------------------------------------- CLI arguments and configs
_EDIT = ["edit", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out", "o"]
_LOC = ["localize", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out", "o"]
_ASK = ["ask", "--model", "tiny-random", "--prompt", "hi"]
_SCORES = ["scores", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out", "o"]
_EVAL = ["evaluate", "--model", "tiny-random", "--cases", "c.jsonl", "--out", "o.json"]
_TRADEOFF = ["tradeoff", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out", "o.json"]
_GEN = ["data", "generate", "--out", "d"]


def _cli_bad(ctx, argv):
    run_cli(argv)


def cli_cases() -> list[Case]:
    bad = {
        ("edit", "--lr"): ["inf", "-inf", "nan", "0", "-1", "abc", "1e400", ""],
        ("edit", "--general-weight"): ["nan", "inf", "-1", "x"],
        ("edit", "--same-image"): ["-1", "1.5", "x", "1000"],
        ("edit", "--edit-steps"): ["0", "-1", "1.5", "x", "1000000000"],
        ("edit", "--questions"): ["0", "-3", "nan"],
        ("edit", "--max-images"): ["0", "-1", "2.5"],
        ("edit", "--mask-steps"): ["0", "-1"],
        ("edit", "--layer"): ["-1", "x", "1.5"],
        ("edit", "--seed"): ["-1", "x"],
        ("edit", "--device-map"): ["bogus", "cuda:x", "gpu"],
        ("localize", "--threshold"): ["1", "1.5", "-0.1", "nan"],
        ("localize", "--topk"): ["0", "2", "nan", "-0.5"],
        ("localize", "--privacy-value"): ["nan", "inf"],
        ("localize", "--layer"): ["1,,2", "a", "-1"],
        ("localize", "--mask-steps"): ["0", "-5"],
        ("ask", "--max-new-tokens"): ["0", "-1", "100000", "nan", "1.5"],
        ("ask", "--seed"): ["-2"],
        ("scores", "--max-pairs"): ["0", "-1"],
        ("scores", "--layers"): ["x", "1,,"],
        ("evaluate", "--max-new-tokens"): ["0", "100000", "x"],
        ("evaluate", "--temperature"): ["0", "nan", "-1"],
        ("evaluate", "--top-p"): ["0", "1.5", "nan"],
        ("evaluate", "--batch-size"): ["0", "-1"],
        ("evaluate", "--limit"): ["0", "-5"],
        ("evaluate", "--out"): ["/", ".", ""],
        ("tradeoff", "--lr"): ["nan", "inf", "0", "-1"],
        ("tradeoff", "--edit-steps"): ["0", "-1"],
        ("tradeoff", "--topk"): ["0", "2", "nan"],
        ("tradeoff", "--max-new-tokens"): ["0", "100000"],
        ("tradeoff", "--out"): ["/", ".."],
        ("data generate", "--per-category"): ["0", "-1", "x"],
        ("data generate", "--seed"): ["-1", "x"],
    }
    base = {"edit": _EDIT, "localize": _LOC, "ask": _ASK, "scores": _SCORES, "evaluate": _EVAL,
            "tradeoff": _TRADEOFF, "data generate": _GEN}
    cases = []
    for (cmd, opt), values in bad.items():
        for v in values:
            cases.append(Case("cli-arguments", f"{cmd.replace(' ', '-')}{opt}={v}",
                              lambda c, a=base[cmd] + [opt, v]: _cli_bad(c, a)))
    for cat in ("", ",", " , "):
        argv = [x if x != "passport" else cat for x in _EDIT]
        cases.append(Case("cli-arguments", f"edit--category={cat!r}", lambda c, a=argv: _cli_bad(c, a)))
    cases += _out_cases()
    cases += _config_cases()
    return cases


def _out_cases() -> list[Case]:
    def out_file(c):
        t = c.tmp()
        (t / "f").write_text("x")
        return str(t / "f")

    def user_folder(c):
        t = c.tmp()
        (t / "mine").mkdir()
        (t / "mine" / "thesis.tex").write_text("precious")
        return str(t / "mine")

    def under_file(c):
        t = c.tmp()
        (t / "f").write_text("x")
        return str(t / "f" / "run")

    def symlink(c):
        t = c.tmp()
        (t / "l").symlink_to(c.base_run())
        return str(t / "l")

    cases = []
    for name, make in [("existing-file", out_file), ("root", lambda c: "/"), ("dot", lambda c: "."),
                       ("non-run-folder", user_folder), ("under-a-file", under_file), ("symlink", symlink),
                       ("dotdot", lambda c: "..")]:
        for cmd in ("edit", "localize", "scores"):
            argv = {"edit": _EDIT, "localize": _LOC, "scores": _SCORES}[cmd]

            def fn(c, make=make, argv=argv):
                out = make(c)
                run_cli([x if x != "o" else out for x in argv])
            cases.append(Case("cli-out", f"{cmd}-{name}", fn))
    return cases


def _config_cases() -> list[Case]:
    from ng_core.method.edit import EditConfig
    from ng_core.method.localize import MaskConfig

    bad_edit = [("lr", v) for v in (float("nan"), float("inf"), 0.0, -1e-5, "0.1", None)] + \
               [("steps", v) for v in (0, -1, 1.5, float("nan"))] + [("questions_per_image", v) for v in (0, -2)] + \
               [("general_weight", v) for v in (float("nan"), -1.0, float("inf"))] + [("eps", 0.0), ("kl_factor", -1)]
    bad_mask = [("lr", v) for v in (float("nan"), 0, -1)] + [("steps", v) for v in (0, -3)] + \
               [("threshold", v) for v in (1.0, -0.1, float("nan"))] + [("topk", v) for v in (0.0, 1.5)] + \
               [("privacy_value", float("inf")), ("templates", ()), ("l1", -1.0)]
    cases = [Case("config", f"edit-{k}={v}", lambda c, k=k, v=v: EditConfig(**{k: v})) for k, v in bad_edit]
    cases += [Case("config", f"mask-{k}={v}", lambda c, k=k, v=v: MaskConfig(**{k: v})) for k, v in bad_mask]
    return cases


def all_cases() -> list[Case]:
    return image_cases() + prompt_cases() + cli_cases()
