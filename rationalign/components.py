"""Import every module that registers a component (stages, losses, engines, trackers, metrics,
rationale and pair-rationale sources, judges, QUARK rewards), so that the
registries are complete before a config is checked against them or a stage is looked up.

Registration happens at import time, next to each component; this is the one place that knows
which packages hold them. The entrypoint, the sweep callback and tests call it.
"""

from __future__ import annotations

import importlib
import pkgutil

# The modules whose import registers components, lowest layer first.
COMPONENT_MODULES = (
    "rationalign.metrics",
    "rationalign.losses",
    "rationalign.rationale",
    "rationalign.rationale.pairs",
    "rationalign.judge.config",
    "rationalign.quark.rewards",
    "rationalign.engines.factory",
    "rationalign.tracking",
)


def import_components() -> None:
    import rationalign.stages as stages_pkg

    for name in COMPONENT_MODULES:
        importlib.import_module(name)

    for m in pkgutil.iter_modules(stages_pkg.__path__):
        importlib.import_module(f"rationalign.stages.{m.name}")
