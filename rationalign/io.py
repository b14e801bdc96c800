"""Atomic file writes and content hashing shared by every stage."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via temp file + rename so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; artifacts follow the umask like open() does
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def iter_jsonl(path: str | Path, error: type[Exception] = ValueError) -> Iterator[tuple[str, int, dict]]:
    """('file:line', line number, object) for every non-blank line of a JSON Lines file.

    Bad JSON or a non-object line raises `error` naming file and line. Lines split on \n / \r\n
    only: real corpora contain U+2028 and friends inside strings.
    """
    path = Path(path)
    text = read_text_located(path, error)
    for lineno, line in enumerate(re.split(r"\r?\n", text), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise error(f"{where}: expected a JSON object, got {type(obj).__name__}")
        yield where, lineno, obj


def read_text_located(path: str | Path, error: type[Exception] = ValueError) -> str:
    """A UTF-8 text file without its byte-order mark (Windows tools write one; it is not part of the
    first line's text); undecodable bytes raise `error` naming file:line:column, not a byte offset."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise error(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {col}); "
                    "re-encode the file as UTF-8") from None


def read_json_located(path: str | Path, error: type[Exception] = ValueError) -> Any:
    """A JSON file's value; invalid JSON raises `error` naming the file, line and column (json's own
    message names neither the file nor, for an empty file, anything useful)."""
    text = read_text_located(path, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        what = "empty file" if not text.strip() else f"{e.msg} at line {e.lineno} column {e.colno}"
        raise error(f"{path}: invalid JSON ({what})") from None
