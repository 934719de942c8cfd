"""Jailed file access: paths resolved inside their folder, regular files only, size-capped reads.

Run folders and dataset folders are read with these helpers, so a file named inside them can
never reach outside (no absolute paths, no ``..``, no symlink that leads out), a FIFO or a
device can never freeze the process, and a JSON file cannot exhaust memory.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ng_core.errors import NGError

#: The largest JSON file read from a run or dataset folder.
MAX_JSON_BYTES = 64 * 1024 * 1024


def inside(root, rel, what: str = "path", error=NGError) -> Path:
    """``root / rel`` resolved, refused unless it stays inside ``root`` (symlinks included)."""
    if not isinstance(rel, (str, os.PathLike)) or not str(rel).strip():
        raise error(f"{what} is not a path: {rel!r}")
    rel_s = str(rel)
    if "\x00" in rel_s:
        raise error(f"{what} {rel_s!r} contains a NUL character")
    p = Path(rel_s)
    if p.is_absolute():
        raise error(f"{what} {rel_s!r} is an absolute path; it must be relative to its folder")
    root_r = Path(root).resolve()
    target = (root_r / p).resolve()
    if target != root_r and root_r not in target.parents:
        raise error(f"{what} {rel_s!r} points outside its folder")
    return target


def regular_file(path, what: str = "file", error=NGError) -> os.stat_result:
    """The stat of ``path``, refused unless it is an existing regular file (no FIFO, device, folder)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} is missing: {path}") from None
    except PermissionError:
        raise error(f"{what} cannot be read (permission denied): {path}") from None
    except OSError as e:
        raise error(f"{what} cannot be read ({e.strerror or e}): {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} is not a regular file: {path}")
    return st


def read_bytes(path, limit: int, what: str = "file", error=NGError) -> bytes:
    """At most ``limit`` bytes of a regular file; larger files are refused (never read whole)."""
    regular_file(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError:
        raise error(f"{what} cannot be read (permission denied): {path}") from None
    except OSError as e:
        raise error(f"{what} cannot be read ({e.strerror or e}): {path}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped after the check
            raise error(f"{what} is not a regular file: {path}")
        chunks, n = [], 0
        while True:
            b = os.read(fd, min(1 << 20, limit + 1 - n))
            if not b:
                break
            chunks.append(b)
            n += len(b)
            if n > limit:
                raise error(f"{what} is larger than the limit of {limit:,} bytes: {path}")
    except OSError as e:
        raise error(f"{what} cannot be read ({e.strerror or e}): {path}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_json(path, what: str = "JSON file", error=NGError, limit: int = MAX_JSON_BYTES):
    """Parse a JSON file (regular, at most ``limit`` bytes, UTF-8), with one-line errors."""
    data = read_bytes(path, limit, what, error)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{what} is corrupt: not UTF-8 text ({e.reason} at byte {e.start}): {path}") from None
    except json.JSONDecodeError as e:
        raise error(f"{what} is corrupt: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}): {path}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply: {path}") from None
