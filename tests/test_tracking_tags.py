"""Issue 27, item 5: `tracking=wandb task=all` crashed at wandb.init (a tag of 85 characters; wandb
takes 1-64). Every tag is made valid, whatever the task selection."""

from __future__ import annotations

from rationalign.data.tasks import TASKS
from rationalign.runner import compose
from rationalign.tracking import WANDB_TAG_MAX, start_tracking, tags_for, valid_tag


def test_valid_tag_keeps_short_tags_and_shortens_long_ones_apart():
    assert valid_tag("loss:mpo") == "loss:mpo" and valid_tag("") == "-"
    long = "task:" + "+".join(TASKS)
    assert len(long) > WANDB_TAG_MAX
    short = valid_tag(long)
    assert len(short) == WANDB_TAG_MAX and short.startswith("task:gec+fluency+")
    assert valid_tag(long + "+x") != short and valid_tag(short) == short


def test_wandb_run_starts_offline_with_every_task_selected(tmp_path, monkeypatch):
    for var, sub in (("WANDB_DIR", "run"), ("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"),
                     ("WANDB_DATA_DIR", "data")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "rationalign")  # the tracker sets it; restored after the test
    cfg = compose(["task=all", "tracking=wandb", f"paths.root={tmp_path}"])
    assert max(len(t) for t in tags_for(cfg)) > WANDB_TAG_MAX  # the case that crashed
    with start_tracking(cfg) as run:
        assert run is not None and run.offline
        assert run.tags and all(1 <= len(t) <= WANDB_TAG_MAX for t in run.tags)
