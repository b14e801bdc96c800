"""torch distributed variables for a submitit multi-task job.

A SLURM job with `tasks_per_node > 1` starts one process per task; submitit tells each its rank,
but transformers' Trainer and accelerate read RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
MASTER_PORT. The sweep callback (rationalign/sweep.py) calls `export_distributed_env` in
`on_job_start`, in the job's own process.
"""

from __future__ import annotations

import os
import random
from typing import Any


def distributed_env(job_env: Any) -> dict[str, str]:
    """The env:// variables for one task of a submitit job (global_rank, local_rank, num_tasks,
    num_nodes, hostnames, job_id as on submitit.JobEnvironment)."""
    num_tasks = int(job_env.num_tasks)
    port = os.environ.get("MASTER_PORT")
    if not port:
        # All tasks of a job must agree without talking to each other: seed on the job id.
        port = str(random.Random(str(job_env.job_id)).randint(20000, 60000))
    return {
        "RANK": str(job_env.global_rank),
        "LOCAL_RANK": str(job_env.local_rank),
        "WORLD_SIZE": str(num_tasks),
        "LOCAL_WORLD_SIZE": str(num_tasks // max(1, int(job_env.num_nodes))),
        "MASTER_ADDR": str(job_env.hostnames[0]),
        "MASTER_PORT": port,
    }


def export_distributed_env(job_env: Any = None, environ: dict | None = None) -> dict[str, str]:
    """Set RANK/WORLD_SIZE/... from submitit before training; returns what was set.

    A no-op outside submitit, for single-task jobs (a 1-process "world" would still make some
    libraries initialise a process group), and when a launcher such as torchrun already set them.
    """
    environ = os.environ if environ is None else environ
    if job_env is None:
        if not any(k.startswith("SUBMITIT_") for k in environ):
            return {}
        try:
            import submitit

            job_env = submitit.JobEnvironment()
        except Exception:  # noqa: BLE001 - not inside a submitit job after all
            return {}
    if int(job_env.num_tasks) <= 1 or "WORLD_SIZE" in environ:
        return {}
    env = distributed_env(job_env)
    environ.update(env)
    return env


SLURM_FIELDS = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID", "array_task_id": "SLURM_ARRAY_TASK_ID",
                "restart_count": "SLURM_RESTART_COUNT", "nodelist": "SLURM_JOB_NODELIST", "ntasks": "SLURM_NTASKS",
                "partition": "SLURM_JOB_PARTITION"}


def slurm_job(environ: dict | None = None) -> dict[str, str] | None:
    """The SLURM job this process runs in (ids, array index, how often it was requeued), for
    result.json; None outside SLURM. SLURM_RESTART_COUNT is only set once a job was requeued."""
    environ = os.environ if environ is None else environ
    if "SLURM_JOB_ID" not in environ:
        return None
    out = {k: environ[v] for k, v in SLURM_FIELDS.items() if v in environ}
    out.setdefault("restart_count", "0")
    return out
