"""What the judge sees: the test inputs and each system's predictions, matched by id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    id: str
    task: str
    instruction: str
    source: str


def load_predictions(pred_dir: Path, system: str) -> dict[str, dict]:
    """{id: prediction row} from <pred_dir>/<system>/<task>.jsonl (the evaluate stage's layout)."""
    sdir = pred_dir / system
    files = sorted(sdir.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"judge: no predictions for system '{system}' under {sdir}")
    out: dict[str, dict] = {}
    for f in files:
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{f}:{lineno}: invalid JSON ({e.msg})") from None
            for key in ("id", "output", "suggestion"):
                if not isinstance(row.get(key), str):
                    raise ValueError(  # noqa: TRY004  (a bad file, reported like every other row error)
                        f"{f}:{lineno}: field '{key}' missing or not a string")
            if row["id"] in out:
                raise ValueError(f"{f}:{lineno}: field 'id': duplicate '{row['id']}'")
            row["_task_file"] = f.stem
            out[row["id"]] = row
    return out


def response_text(pred: dict, field: str) -> str:
    return (pred.get(field) or "").strip()
