"""Import every module that registers a component (stages, rationale sources), so that the
registries are complete before a config is checked against them or a stage is looked up.

Registration happens at import time, next to each component; this is the one place that knows
which packages hold them. The entrypoint, the sweep callback and tests call it.
"""

from __future__ import annotations

import importlib
import pkgutil


def import_components() -> None:
    import rationalign.rationale  # noqa: F401  (registers the sources)
    import rationalign.stages as stages_pkg

    for m in pkgutil.iter_modules(stages_pkg.__path__):
        importlib.import_module(f"rationalign.stages.{m.name}")
