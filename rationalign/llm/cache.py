"""Answers of an LLM endpoint on disk, one JSON file per request key, so a rerun never pays twice."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rationalign.io import atomic_write_json

log = logging.getLogger(__name__)


class ResponseCache:
    """One JSON file per key (atomic writes): concurrent writers never corrupt each other, and
    an interrupted run keeps everything answered so far."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["response"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable cache entry %s (%s)", path, e)
            return None

    def put(self, key: str, entry: dict) -> None:
        atomic_write_json(self._path(key), entry)
