"""A one-node SLURM cluster on this machine, on localhost only: what `make slurm-check` runs against.

    python experiments/slurm_cluster.py start     # installs slurm-wlm + munge (apt-get, as root) if missing
    python experiments/slurm_cluster.py status    # exit 0 when this script's cluster is up and idle
    python experiments/slurm_cluster.py stop
    eval "$(python experiments/slurm_cluster.py env)"   # SLURM_CONF for sinfo / sbatch / submitit

Everything lives in one state dir (default /tmp/rationalign-slurm; --state-dir or
$RATIONALIGN_SLURM_DIR): its own slurm.conf, munge key and socket, spool, state, logs and pid files,
and its own ports (not SLURM's defaults 6817/6818, so a real slurmctld on this machine keeps them).
Nothing under /etc is written. `stop` signals only daemons whose pid file is in that dir *and* whose
command line names that dir's files: a cluster this script did not start is never touched. `start`
is idempotent: daemons of ours that run are kept, missing ones are started.

The node is this machine: its usable CPUs and memory, one partition. No cgroup plugin (a container
has no writable cgroup tree): processes are tracked by parent pid (proctrack/linuxproc) and not
bound (task/none). Tested on Debian 12's slurm-wlm 22.05 as root (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get("RATIONALIGN_SLURM_DIR", "/tmp/rationalign-slurm"))
PARTITION = "local"
PORTS = (16817, 16818)  # slurmctld, slurmd
PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("slurmctld", "slurmd", "munged", "sinfo", "sbatch", "scontrol", "squeue", "scancel")
DAEMONS = ("munged", "slurmctld", "slurmd")  # start order; stop goes the other way


@dataclass(frozen=True)
class Node:
    host: str
    cpus: int
    mem_mb: int


class ClusterError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# what the cluster looks like (pure: tests/test_slurm_cluster.py)


def this_machine() -> Node:
    """The node: host name, CPUs this process may use, memory (90%: slurmd refuses a node that has
    less than it is configured with)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            mem_kb = min(mem_kb, int(Path(limit).read_text().strip()) // 1024)
        except (OSError, ValueError):  # absent, or "max"
            pass
    return Node(host=socket.gethostname().split(".")[0], cpus=cpus, mem_mb=int(mem_kb / 1024 * 0.9))


def paths(state: Path) -> dict[str, Path]:
    return {"conf": state / "slurm.conf", "key": state / "munge" / "munge.key",
            "socket": state / "munge" / "munge.socket", "log": state / "log", "spool": state / "spool",
            "statesave": state / "statesave", "owner": state / "owner.json",
            "munged.pid": state / "munged.pid", "slurmctld.pid": state / "slurmctld.pid",
            "slurmd.pid": state / "slurmd.pid"}


def slurm_conf(state: Path, node: Node, partition: str = PARTITION, ports: tuple[int, int] = PORTS) -> str:
    """slurm.conf for one node on 127.0.0.1, every file inside `state`."""
    p = paths(state)
    lines = [
        "# Written by experiments/slurm_cluster.py: a one-node cluster on localhost. Edit that script, not this.",
        "ClusterName=rationalign-local",
        f"SlurmctldHost={node.host}(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={p['socket']}",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={p['statesave']}",
        f"SlurmdSpoolDir={p['spool']}",
        f"SlurmctldPidFile={p['slurmctld.pid']}",
        f"SlurmdPidFile={p['slurmd.pid']}",
        f"SlurmctldLogFile={p['log'] / 'slurmctld.log'}",
        f"SlurmdLogFile={p['log'] / 'slurmd.log'}",
        # No cgroups in a container: track job processes by parent pid, do not bind tasks.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",  # CPUs are the consumable; memory is checked, not counted
        "SlurmdParameters=config_overrides",  # trust the node line below (a container's /proc overstates)
        "ReturnToService=2",
        "PropagatePrioProcess=1",  # a job runs at its submitter's nice value (a shared dev machine)
        "KillWait=2",  # seconds between SIGTERM and SIGKILL when a job is cancelled or requeued
        "MinJobAge=600",  # finished jobs stay visible to squeue/scontrol for 10 minutes
        "InactiveLimit=0",
        "SlurmdTimeout=300",
        f"NodeName={node.host} NodeAddr=127.0.0.1 CPUs={node.cpus} RealMemory={node.mem_mb} State=UNKNOWN",
        f"PartitionName={partition} Nodes={node.host} Default=YES MaxTime=INFINITE State=UP",
    ]
    return "\n".join(lines) + "\n"


def client_env(state: Path, environ: dict | None = None) -> dict[str, str]:
    """The environment in which sinfo/sbatch/squeue (and submitit, which calls them) reach this cluster."""
    return {**(os.environ if environ is None else environ), "SLURM_CONF": str(paths(state)["conf"])}


# ---------------------------------------------------------------------------------------------
# processes: only ours


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def our_pid(state: Path, daemon: str) -> int | None:
    """The daemon's pid when it runs *and* was started by this script for `state` (its command line
    names a file of the state dir); None otherwise, whatever else runs on the machine."""
    try:
        pid = int(paths(state)[f"{daemon}.pid"].read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    cmd = _cmdline(pid)
    return pid if daemon in cmd and str(state) in cmd else None


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _daemon_command(state: Path, daemon: str, node: Node) -> list[str]:
    p = paths(state)
    if daemon == "munged":
        return ["munged", "--force", f"--socket={p['socket']}", f"--key-file={p['key']}",
                f"--pid-file={p['munged.pid']}", f"--log-file={p['log'] / 'munged.log'}",
                f"--seed-file={state / 'munge' / 'munged.seed'}"]
    if daemon == "slurmctld":
        return ["slurmctld", "-f", str(p["conf"])]
    return ["slurmd", "-f", str(p["conf"]), "-N", node.host]


# ---------------------------------------------------------------------------------------------
# commands


def install() -> None:
    """apt-get install slurm-wlm munge when a binary is missing (root only; a CI machine is root)."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterError(f"missing {', '.join(missing)}: install the Debian packages {' '.join(PACKAGES)} "
                           "(apt-get install, as root)")
    print(f"installing {' '.join(PACKAGES)} (missing: {', '.join(missing)})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def node_states(state: Path) -> list[str]:
    """sinfo's state of each node of this cluster ([] when the controller does not answer)."""
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=client_env(state), capture_output=True,
                          text=True, check=False, timeout=30)
    return proc.stdout.split() if proc.returncode == 0 else []


def start(state: Path, timeout_s: float = 90.0) -> None:
    install()
    p = paths(state)
    node = this_machine()
    running = {d: our_pid(state, d) for d in DAEMONS}
    if all(running.values()) and _serving(node_states(state)):
        print(f"already running ({state}): " + " ".join(f"{d}={pid}" for d, pid in running.items()))
        return
    if not any(running.values()):
        busy = [port for port in PORTS if _port_in_use(port)]
        if busy:
            raise ClusterError(f"port(s) {busy} in use by a process this script did not start; not touching it")
    for d in (p["log"], p["spool"], p["statesave"], p["key"].parent):
        d.mkdir(parents=True, exist_ok=True)
    p["key"].parent.chmod(0o700)
    conf = slurm_conf(state, node)
    if not p["conf"].exists() or p["conf"].read_text() != conf:
        p["conf"].write_text(conf)
    if not p["key"].exists():
        p["key"].write_bytes(os.urandom(1024))
        p["key"].chmod(0o400)
    for daemon in DAEMONS:
        if running[daemon]:
            continue
        log_file = p["log"] / f"{daemon}.start.log"
        with log_file.open("a") as fh:
            proc = subprocess.run(_daemon_command(state, daemon, node), stdout=fh, stderr=subprocess.STDOUT,
                                  check=False, env=client_env(state), start_new_session=True)
        if proc.returncode != 0:
            raise ClusterError(f"{daemon} did not start (exit {proc.returncode}): {_tail(log_file)}")
        _wait(lambda d=daemon: our_pid(state, d), 20, f"{daemon} did not write {p[daemon + '.pid']}",
              p["log"] / f"{daemon}.log")
    _wait(lambda: _serving(node_states(state), idle=True), timeout_s,
          f"the node did not become idle in {timeout_s:.0f}s", p["log"] / "slurmd.log", p["log"] / "slurmctld.log")
    p["owner"].write_text(json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "node": node.__dict__,
                                      "pids": {d: our_pid(state, d) for d in DAEMONS}}, indent=1))
    print(f"SLURM cluster up: node {node.host} ({node.cpus} CPUs, {node.mem_mb} MB), partition {PARTITION}, "
          f"SLURM_CONF={p['conf']}")


def stop(state: Path, timeout_s: float = 30.0) -> None:
    p = paths(state)
    running = {d: our_pid(state, d) for d in DAEMONS}
    if not any(running.values()):
        print(f"no cluster started by this script is running ({state}); nothing stopped")
        return
    if running["slurmctld"]:  # cancel our jobs first, so no job step outlives its slurmd
        subprocess.run(["scancel", "--full", "--user", str(os.geteuid())], env=client_env(state),
                       capture_output=True, check=False, timeout=30)
        _wait(lambda: _queue_empty(state), timeout_s, "jobs still in the queue", p["log"] / "slurmd.log",
              fail=False)
    for daemon in reversed(DAEMONS):
        pid = running[daemon]
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        if not _wait(lambda pid=pid: not _alive(pid), 15, "", fail=False):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped {daemon} ({pid})")
    for daemon in DAEMONS:
        p[f"{daemon}.pid"].unlink(missing_ok=True)
    p["owner"].unlink(missing_ok=True)


def status(state: Path) -> int:
    running = {d: our_pid(state, d) for d in DAEMONS}
    for d, pid in running.items():
        print(f"{d:10} {'running, pid ' + str(pid) if pid else 'not running (started by this script)'}")
    states = node_states(state) if running["slurmctld"] else []
    print(f"node state {' '.join(states) or '-'}   SLURM_CONF={paths(state)['conf']}")
    return 0 if all(running.values()) and _serving(states) else 1


# ---------------------------------------------------------------------------------------------


def _serving(states: list[str], idle: bool = False) -> bool:
    """Every node answers and takes jobs (idle, or also running some unless `idle`)."""
    ok = ("idle",) if idle else ("idle", "mix", "alloc")
    return bool(states) and all(s.startswith(ok) for s in states)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


def _queue_empty(state: Path) -> bool:
    proc = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=client_env(state), capture_output=True, text=True,
                          check=False, timeout=30)
    return proc.returncode == 0 and not [line for line in proc.stdout.splitlines()
                                         if not line.endswith(("COMPLETED", "CANCELLED", "FAILED"))]


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"({path} absent)"


def _wait(cond, timeout_s: float, what: str, *logs: Path, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.5)
    if fail:
        raise ClusterError(what + "".join(f"\n--- {log} ---\n{_tail(log)}" for log in logs))
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("start", "stop", "status", "env", "conf"))
    ap.add_argument("--state-dir", type=Path, default=DEFAULT_DIR)
    args = ap.parse_args(argv)
    state = args.state_dir.resolve()
    try:
        if args.command == "start":
            start(state)
        elif args.command == "stop":
            stop(state)
        elif args.command == "status":
            return status(state)
        elif args.command == "env":
            print(f"export SLURM_CONF={paths(state)['conf']}")
        else:
            print(slurm_conf(state, this_machine()), end="")
    except ClusterError as e:
        print(f"slurm_cluster {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
