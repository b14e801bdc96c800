"""Running under `accelerate launch` (several processes, one per device): who writes, who waits.

accelerate launch sets RANK / WORLD_SIZE for each process; the process group is accelerate's
PartialState (gloo with --cpu, NCCL on GPUs), shared with the transformers Trainer. Rules:
  * stages that train (Stage.collective) run on every rank, because the Trainer's all-reduce needs
    every rank; rank 0 writes into the stage dir, the other ranks write into a private scratch copy
    of it (a copy, so a resumed stage takes the same decisions on every rank) deleted afterwards;
  * every other stage (no collective: errant, sampling, scoring, reports) runs on rank 0 alone
    while the others wait at a barrier, then read its manifest;
  * only rank 0 writes artifacts and manifests, and the manifest records world_size.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Rank 0 may run a whole non-training stage (sampling, say) while the others wait: a long timeout.
BARRIER_TIMEOUT = timedelta(hours=12)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def check_launch() -> None:
    """FSDP and DeepSpeed launches need CUDA: accelerate applies FSDP only on accelerator devices (on CPU
    its state is MULTI_CPU and the model would silently get plain DDP), and DeepSpeed's ops need CUDA.
    Say so instead of training something else than configured."""
    import torch
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    for flag, name in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")):
        if cpu and parse_flag_from_env(flag):
            raise RuntimeError(f"{name} launch on a machine without CUDA: accelerate would train plain DDP "
                               "instead; on CPU use conf/accelerate/cpu.yaml (DDP over gloo), see docs/distributed.md")


def cpu_launch_processes() -> int:
    """N when this process is the lone child of `accelerate launch --cpu --num_processes N` (N > 1), else 1.

    accelerate (<= 1.15) starts N CPU processes only under MPI (--mpirun_hostfile); without it the
    simple launcher runs the script once, and the user's --num_processes is lost. We read the
    launcher's own command line (our parent) with accelerate's own parser to recover N."""
    from accelerate.utils import parse_flag_from_env

    if "WORLD_SIZE" in os.environ or not parse_flag_from_env("ACCELERATE_USE_CPU"):
        return 1
    try:
        argv = [a.decode() for a in Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:  # no /proc (macOS): nothing to recover
        return 1
    if "launch" not in argv or not any(Path(a).name.startswith("accelerate") for a in argv[: argv.index("launch")]):
        return 1
    from accelerate.commands.launch import launch_command_parser

    try:
        args = launch_command_parser().parse_args(argv[argv.index("launch") + 1:])
    except SystemExit:
        return 1
    if not args.cpu or args.mpirun_hostfile or not args.num_processes or args.num_processes < 2:
        return 1
    return int(args.num_processes)


def relaunch_cpu_processes(argv: list[str]) -> None:
    """Restart `-m rationalign <argv>` as N gloo processes through torch.distributed.run (what
    accelerate's own multi-process launcher uses) when accelerate's --cpu launcher started only one."""
    n = cpu_launch_processes()
    if n < 2:
        return
    import sys

    print(f"[rationalign] accelerate launch --cpu started 1 process without MPI; starting {n} with "
          "torch.distributed.run (gloo)", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "rationalign", *argv]
    os.execv(sys.executable, cmd)


def _state():
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # The first PartialState() creates the process group; the Trainer's later ones share it. Without
    # CUDA (or with ACCELERATE_USE_CPU) the ranks talk over gloo.
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT)


_solo = False  # rank 0 is running a stage alone (the others wait at a barrier)


@contextmanager
def solo():
    """Rank 0 runs a non-collective stage by itself: stages it builds on the way must not wait for the
    other ranks (they are waiting for it), and a training stage cannot run at all."""
    global _solo
    _solo = True
    try:
        yield
    finally:
        _solo = False


def in_solo() -> bool:
    return _solo


def barrier() -> None:
    if world_size() > 1 and not _solo:
        _state().wait_for_everyone()


def main_then_broadcast(fn: Callable[[], T]) -> T:
    """fn() computed on rank 0 only; every rank gets its (picklable) result."""
    if world_size() == 1 or _solo:
        return fn()
    from accelerate.utils import broadcast_object_list

    _state()
    box: list[Any] = [fn() if is_main() else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def scratch_copy(stage_dir: Path) -> Path:
    """A non-main rank's private work dir for a collective stage: a copy of what rank 0 has so far."""
    root = Path(tempfile.mkdtemp(prefix=f"rationalign-rank{rank()}-"))
    work = root / stage_dir.name
    if stage_dir.exists():
        shutil.copytree(stage_dir, work, symlinks=True)
    else:
        work.mkdir()
    return work


def drop_scratch(work: Path) -> None:
    shutil.rmtree(work.parent, ignore_errors=True)
