"""The one entrypoint: `rationalign [overrides]` (= python -m rationalign), a @hydra.main app.

It only parses the command line: rationalign.validate checks the composed config (before any model
loads) and rationalign.runner runs its stage; both are what tests and drivers call directly.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

from rationalign.components import import_components
from rationalign.config import conf_dir, register_configs, register_resolvers
from rationalign.runner import run
from rationalign.validate import ConfigError, check_group_options, validate

log = logging.getLogger("rationalign")

CONF_DIR = conf_dir()  # the checkout's conf/, or rationalign/conf inside an installed wheel

register_resolvers()
register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    logging.getLogger("rationalign").setLevel(logging.INFO)
    try:
        import_components()
        validate(cfg)
    except ConfigError as e:
        if _multirun():  # one bad grid point: Hydra records this job as failed (result.json), the others run
            raise
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    if os.environ.get("HYDRA_FULL_ERROR") == "1" or _multirun():
        run(cfg, validated=True)  # the traceback (and, in a sweep, Hydra's per-job failure record)
        return
    try:
        run(cfg, validated=True)
    except Exception as e:  # one line naming what failed; the traceback behind HYDRA_FULL_ERROR=1
        log.debug("stage failed", exc_info=True)
        print(f"error: {one_line(e)}  (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, (ValueError, RuntimeError, OSError)) else f"{type(e).__name__}: {text}"


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def entrypoint() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rationalign.argv_guard import guard_argv

    guard_argv(sys.argv[1:])  # before Hydra writes .hydra/*.yaml
    from rationalign.distributed import relaunch_cpu_processes
    from rationalign.quark.schedule import group_overrides

    sys.argv[1:] = group_overrides(sys.argv[1:])  # quark.schedule=<name> selects the preset group
    try:
        check_group_options(sys.argv[1:], CONF_DIR)  # experiment=smok would otherwise run the defaults
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    relaunch_cpu_processes(sys.argv[1:])
    main()


if __name__ == "__main__":
    entrypoint()
