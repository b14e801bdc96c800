"""How a tracked run is told apart from its siblings: its name, its group, its hyper-parameter tags.

A sweep of 75 MPO jobs must not give 75 runs called `pipeline-mpo`. Inside a Hydra multirun job:
  * the name is made of the job's *swept* overrides (`lam=0.4 beta=0.01`), the keys whose value
    varies over the grid, read from the sweep's own record of its command line and preset grid
    (`<sweep dir>/multirun.yaml`, which Hydra writes before launching any job);
  * the group is `tracking.group` when set (the presets set it), else the sweep: `<run_name>-<sweep
    dir name>`, so the runs of one sweep group together without asking the user for a name;
  * the loss hyper-parameters become tags `loss.<key>=<value>` (next to `loss:<name>`), so the
    dashboard filters and colours by them; their values are in the run's config as well.
Outside a multirun the name stays `<stage>-<loss>` and the group `tracking.group`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MAX_TAG = 64  # wandb refuses a longer tag


def hydra_job() -> tuple[Path | None, list[str]]:
    """(sweep dir, the job's overrides) of the Hydra multirun job running now; (None, []) otherwise."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra app
        return None, []
    if hc.mode != RunMode.MULTIRUN:
        return None, []
    return Path(str(hc.sweep.dir)), [str(o) for o in hc.overrides.task]


def _parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def sweep_grid(master: DictConfig) -> dict[str, list[str] | None]:
    """{key: the job overrides it contributes} of a multirun's master config, as Hydra's basic
    sweeper expands it: the preset's `hydra.sweeper.params` first, then the command line, a later
    override of a key replacing the earlier one in its place. A swept key has several entries; one
    that cannot be listed (Optuna's `interval(0.1, 1)`) has None."""
    params = OmegaConf.select(master, "hydra.sweeper.params") or {}
    lines = [f"{k}={v}" for k, v in dict(params).items()] + [str(o) for o in master.hydra.overrides.task]
    grid: dict[str, list[str] | None] = {}
    for o in _parse(lines):
        key = o.get_key_element()
        if not o.is_sweep_override():
            grid[key] = [f"{key}={o.get_value_element_as_str()}"]
        elif o.is_discrete_sweep():
            grid[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            grid[key] = None
    return grid


def swept_keys(sweep_dir: Path | None) -> list[str] | None:
    """Keys whose value varies over the sweep's grid, in the sweeper's order (None when the sweep left
    no multirun.yaml to read, e.g. a sweeper that does not write it)."""
    path = None if sweep_dir is None else sweep_dir / "multirun.yaml"
    if path is None or not path.exists():
        return None
    grid = sweep_grid(OmegaConf.load(path))
    return [k.lstrip("+~") for k, jobs in grid.items() if jobs is None or len(jobs) > 1]


def run_name(cfg: DictConfig, job_overrides: list[str], swept: list[str] | None) -> str:
    """`lam=0.4 beta=0.01` from the job's swept overrides (every override when the grid is unknown);
    a key is shortened to its last part unless two swept keys share it."""
    # the value as typed (Hydra would print 1e-4 as 0.0001)
    values = {o.get_key_element().lstrip("+~"): text.partition("=")[2]
              for text, o in zip(job_overrides, _parse(job_overrides))}
    keys = [k for k in (swept if swept is not None else values) if k in values]
    if not keys:
        return f"{cfg.stage.name}-{cfg.loss.name}"
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return " ".join(f"{s if last.count(s) == 1 else k}={values[k]}" for k, s in zip(keys, last))


def run_group(cfg: DictConfig, sweep_dir: Path | None) -> str | None:
    group = cfg.tracking.group
    if group or sweep_dir is None:
        return group
    return f"{cfg.run_name}-{sweep_dir.name}"


def loss_tags(cfg: DictConfig) -> list[str]:
    """`loss.<key>=<value>` for every scalar option of the loss (the value is in the config too; a tag
    that would pass wandb's 64 characters is left to the config alone)."""
    tags = []
    for k, v in OmegaConf.to_container(cfg.loss, resolve=True).items():
        if k == "name" or isinstance(v, (dict, list)) or v is None:
            continue
        tag = f"loss.{k}={v}"
        if len(tag) <= MAX_TAG:
            tags.append(tag)
    return tags


def identity(cfg: DictConfig) -> dict[str, Any]:
    """{'name', 'group', 'dir'} of the run this process would open now (rationalign.tracking). In a
    sweep, `dir` is the job's output dir, so its offline run lies beside its result.json."""
    sweep_dir, overrides = hydra_job()
    if sweep_dir is None:
        return {"name": f"{cfg.stage.name}-{cfg.loss.name}", "group": cfg.tracking.group, "dir": None}
    from hydra.core.hydra_config import HydraConfig

    return {"name": run_name(cfg, overrides, swept_keys(sweep_dir)), "group": run_group(cfg, sweep_dir),
            "dir": str(HydraConfig.get().runtime.output_dir)}
