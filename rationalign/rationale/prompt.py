"""The teacher prompt (paper Fig. 3 with the task's Table 10 instruction), shared by the `teacher` and
`local` sources. It is rendered by `rationalign.prompts.render_teacher` from `prompts.teacher_template`
and `task.specs.<task>.teacher_instruction`, like every other prompt, so the rationalize stage, the
`show_prompts` stage and the tests all see the same text."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rationalign.data.records import Record
from rationalign.edits import Edit

TeacherPrompt = Callable[[Record, Sequence[Edit]], str]


def teacher_prompt(prompts_cfg: Any, task_cfg: Any) -> TeacherPrompt:
    """Record + its edits -> the Fig. 3 prompt under these prompts/task configs."""
    from rationalign.prompts import get_spec, render_teacher

    def render(record: Record, edits: Sequence[Edit]) -> str:
        spec = get_spec(task_cfg, record.task)
        return render_teacher(prompts_cfg, spec, record.source, record.target or "", edits)

    return render


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[Any, Any]:
    from omegaconf import OmegaConf

    from rationalign.config import conf_dir

    conf = Path(conf_dir())
    prompts = OmegaConf.load(conf / "prompts" / "paper.yaml")
    specs = {}
    for path in sorted((conf / "task").glob("*.yaml")):
        node = OmegaConf.load(path)
        if node.get("specs"):
            specs.update(OmegaConf.to_container(node.specs))
    return prompts, {"specs": specs}


def paper_teacher_prompt() -> TeacherPrompt:
    """The shipped paper texts (conf/prompts/paper.yaml, conf/task/*.yaml): the default when a source
    is built outside a stage."""
    return teacher_prompt(*_shipped())


def clean_output(text: str, strip_prefix: str | None = "###Explanation:") -> str:
    """The answer without an echoed prefix (Fig. 3 ends at "###Explanation:"; "#"s and case ignored)."""
    text = text.strip()
    if strip_prefix:
        bare = strip_prefix.lstrip("#").strip().lower()
        probe = text.lstrip("#").lstrip()
        if bare and probe.lower().startswith(bare):
            text = probe[len(bare):].strip()
    return text
