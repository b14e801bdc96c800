"""TASKS (rationalign/data/tasks.py) is the one task list: the task config group must agree."""

from pathlib import Path

import yaml

from rationalign.data.tasks import TASKS

TASK_CONF = Path(__file__).resolve().parents[1] / "conf" / "task"
PRESETS = {"all", "demo"}  # group options that select several tasks rather than define one


def test_every_task_has_a_config_file_and_no_file_names_an_unknown_task():
    defined = {p.stem for p in TASK_CONF.glob("*.yaml")} - PRESETS
    assert defined == set(TASKS)


def test_task_all_selects_tasks_in_their_order():
    node = yaml.safe_load((TASK_CONF / "all.yaml").read_text())
    assert node["names"] == list(TASKS)
    assert [d for d in node["defaults"] if d != "_self_"] == list(TASKS)


def test_presets_select_known_tasks_only():
    for name in PRESETS:
        node = yaml.safe_load((TASK_CONF / f"{name}.yaml").read_text())
        assert set(node["names"]) <= set(TASKS), name
