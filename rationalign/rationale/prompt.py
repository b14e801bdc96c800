"""The teacher prompt (paper Fig. 3): the teacher sees the instruction, the source, the revision
and the extracted edits, and explains each edit. Shared by the `teacher` and `local` sources."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rationalign.data.records import Record
from rationalign.edits import Edit, format_edits

# Faithful in spirit to the paper's Fig. 3, NOT its exact text; conf/rationale/teacher.yaml carries
# the same template and is where the paper's wording goes.
DEFAULT_TEACHER_TEMPLATE = """\
You are an expert writing tutor. A text was revised to follow an instruction. Explain why each of \
the listed edits was made, one sentence per edit, in the order given, using the forms \
"The word X should be replaced by Y because ...", "The word X should be deleted because ..." and \
"The word Y should be inserted because ..." (say "The phrase" for several words). Explain only \
the listed edits and do not rewrite the text. If there are no edits, say why the text needs no change.

Instruction: {instruction}
Original text: {source}
Revised text: {target}
Edits:
{edits}

Rationale:"""

PLACEHOLDERS = ("instruction", "source", "target", "edits", "task")
_FIELD = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def check_template(template: str, where: str = "rationale.prompt_template") -> None:
    missing = [p for p in ("source", "target") if "{" + p + "}" not in template]
    if missing:
        raise ValueError(f"{where}: template lacks placeholder(s) {['{' + m + '}' for m in missing]}")


def render_prompt(template: str, record: Record, edits: Sequence[Edit]) -> str:
    """Fill only the known {placeholders}: other braces (JSON examples, code) stay as written,
    and braces inside the texts are never interpreted, unlike str.format."""
    values = {"instruction": record.instruction, "source": record.source,
              "target": record.target or "", "edits": format_edits(edits), "task": record.task}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def clean_output(text: str, strip_prefix: str | None = "Rationale:") -> str:
    text = text.strip()
    if strip_prefix and text.lower().startswith(strip_prefix.lower()):
        text = text[len(strip_prefix):].strip()
    return text
