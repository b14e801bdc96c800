"""Shared fixtures: the repo's shared/ data (when present), configs for the tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_environ():
    """Put os.environ back after every test. Code under test may set RANK/WORLD_SIZE (submitit's
    rank mapping does, by design); one leaked WORLD_SIZE makes every later stage wait in a
    barrier for ranks that never come."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def shared_dir(kind: str) -> Path | None:
    env = {"data": "RATIONALIGN_DATA", "vectors": "RATIONALIGN_VECTORS"}[kind]
    p = Path(os.environ[env]) if os.environ.get(env) else REPO.parent / "shared" / kind
    return p if p.exists() else None


@pytest.fixture
def tiny_overrides(tmp_path):
    """Overrides that make any stage run in seconds on the random tiny model."""
    return [
        "model=tiny",
        f"paths.root={tmp_path / 'out'}",
        "sft.train.epochs=1", "sft.train.batch_size=8",
        "data.max_labeled_per_task=6", "data.max_unlabeled_per_task=4", "data.max_test_per_task=3",
        "engine.batch_size=16",
    ]
