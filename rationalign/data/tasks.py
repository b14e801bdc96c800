"""The eight Table 1 tasks: the one list the code reads.

conf/task/<name>.yaml holds each task's prompts and metric, and conf/task/all.yaml selects all of
them; tests/test_tasks.py checks that both agree with TASKS.
"""

from __future__ import annotations

TASKS = ("gec", "fluency", "clarity", "coherence", "paraphrase", "neutralization",
         "simplification", "formality")
