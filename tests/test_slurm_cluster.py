"""The pieces of the local SLURM cluster and of SLURM jobs that run without SLURM: the generated
slurm.conf, which daemons the script owns (never another cluster's), and the SLURM_* -> torch
distributed rank mapping. The cluster itself runs in `make slurm-check` (experiments/slurm_check.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "experiments"))
import slurm_cluster as sc  # a script under experiments/

from rationalign.submitit_env import export_distributed_env, slurm_job


def _conf(state: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in sc.slurm_conf(state, sc.Node("node1", 6, 12000)).splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_slurm_conf_one_node_no_cgroups_everything_in_the_state_dir(tmp_path):
    conf = _conf(tmp_path)
    text = sc.slurm_conf(tmp_path, sc.Node("node1", 6, 12000))
    # a container has no writable cgroup tree: no cgroup plugin anywhere
    assert "cgroup" not in text.lower()
    assert conf["ProctrackType"] == ["proctrack/linuxproc"] and conf["TaskPlugin"] == ["task/none"]
    assert conf["SelectType"] == ["select/cons_tres"] and conf["SlurmUser"] == ["root"]
    assert conf["NodeName"] == ["node1 NodeAddr=127.0.0.1 CPUs=6 RealMemory=12000 State=UNKNOWN"]
    assert conf["PartitionName"] == [f"{sc.PARTITION} Nodes=node1 Default=YES MaxTime=INFINITE State=UP"]
    assert conf["SlurmctldHost"] == ["node1(127.0.0.1)"]  # localhost only
    # not SLURM's default ports, so a real slurmctld on the machine keeps its own
    assert (int(conf["SlurmctldPort"][0]), int(conf["SlurmdPort"][0])) == sc.PORTS and 6817 not in sc.PORTS
    # every file the daemons write, and munge's socket, lie in the state dir (nothing under /etc, /var)
    paths = [v.split("=", 1)[-1] for vs in conf.values() for v in vs if "/" in v and not v.startswith(("proctrack",
             "task/", "select/", "auth/", "cred/", "sched/", "jobacct", "accounting", "jobcomp"))]
    assert paths and all(p.startswith(str(tmp_path) + "/") for p in paths), paths
    assert conf["AuthInfo"] == [f"socket={tmp_path / 'munge' / 'munge.socket'}"]


def test_this_machine_is_a_plausible_node():
    node = sc.this_machine()
    assert node.host and "." not in node.host
    assert 1 <= node.cpus <= (os.cpu_count() or 1) and node.mem_mb > 100


def _fake_daemon(*argv: str) -> subprocess.Popen:
    """A sleeping process whose command line reads like `argv` (what our_pid inspects)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])


def test_only_daemons_started_for_this_state_dir_count_as_ours(tmp_path):
    state, other = tmp_path / "ours", tmp_path / "theirs"
    state.mkdir()
    ours = _fake_daemon("slurmd", "-f", str(state / "slurm.conf"))
    theirs = _fake_daemon("slurmd", "-f", str(other / "slurm.conf"))  # e.g. the machine's real cluster
    try:
        assert sc.our_pid(state, "slurmd") is None  # no pid file: nothing of ours
        (state / "slurmd.pid").write_text(f"{theirs.pid}\n")
        assert sc.our_pid(state, "slurmd") is None  # a pid file naming someone else's daemon
        (state / "slurmd.pid").write_text(f"{ours.pid}\n")
        assert sc.our_pid(state, "slurmd") == ours.pid
        assert sc.our_pid(state, "slurmctld") is None
    finally:
        ours.kill()
        theirs.kill()
        ours.wait()
        theirs.wait()
    assert sc.our_pid(state, "slurmd") is None  # dead: not running


def test_stop_leaves_a_cluster_it_did_not_start_alone(tmp_path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    foreign = _fake_daemon("slurmctld", "-f", "/etc/slurm/slurm.conf")
    try:
        for d in sc.DAEMONS:  # stale pid files pointing at a process this script did not start
            (state / f"{d}.pid").write_text(f"{foreign.pid}\n")
        sc.stop(state)
        assert "nothing stopped" in capsys.readouterr().out
        time.sleep(0.2)
        assert foreign.poll() is None  # still running
        assert sc.status(state) == 1
    finally:
        foreign.kill()
        foreign.wait()


def test_client_env_points_slurm_commands_at_this_cluster(tmp_path):
    env = sc.client_env(tmp_path, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "SLURM_CONF": str(tmp_path / "slurm.conf")}


def test_install_refuses_politely_without_root(monkeypatch):
    monkeypatch.setattr(sc.shutil, "which", lambda name: None)
    monkeypatch.setattr(sc.os, "geteuid", lambda: 1000)
    with pytest.raises(sc.ClusterError, match="install the Debian packages slurm-wlm munge"):
        sc.install()


# --------------------------------------------------------------------------------------------
# SLURM_* -> RANK / WORLD_SIZE / ... (through submitit's JobEnvironment, as in a job)


def _slurm_env(monkeypatch, **values: str) -> None:
    for k in [k for k in os.environ if k.startswith(("SLURM_", "SUBMITIT_"))]:
        monkeypatch.delenv(k)
    # setenv before delenv so monkeypatch records them: export_distributed_env writes these into
    # os.environ, and an unrecorded key would outlive the test (conftest also restores os.environ)
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(k, "unset")
        monkeypatch.delenv(k)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    for k, v in values.items():
        monkeypatch.setenv(k, v)


def test_rank_mapping_two_nodes_four_tasks(monkeypatch):
    pytest.importorskip("submitit")
    # task 3 of 4: second node (of gpu[07-08]), its second local task
    _slurm_env(monkeypatch, SLURM_JOB_ID="991", SLURM_PROCID="3", SLURM_LOCALID="1", SLURM_NTASKS="4",
               SLURM_JOB_NUM_NODES="2", SLURM_NODEID="1", SLURM_JOB_NODELIST="gpu[07-08]")
    env = export_distributed_env()
    assert env["RANK"] == "3" and env["LOCAL_RANK"] == "1" and env["WORLD_SIZE"] == "4"
    assert env["LOCAL_WORLD_SIZE"] == "2" and env["MASTER_ADDR"] == "gpu07"  # rank 0 lives on the first node
    port = env["MASTER_PORT"]
    # another task of the same job derives the same rendezvous port, without talking to it
    _slurm_env(monkeypatch, SLURM_JOB_ID="991", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NTASKS="4",
               SLURM_JOB_NUM_NODES="2", SLURM_NODEID="0", SLURM_JOB_NODELIST="gpu[07-08]")
    env0 = export_distributed_env()
    assert env0["RANK"] == "0" and env0["MASTER_PORT"] == port and 20000 <= int(port) <= 60000


def test_rank_mapping_leaves_single_task_jobs_alone(monkeypatch):
    pytest.importorskip("submitit")
    _slurm_env(monkeypatch, SLURM_JOB_ID="5", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NTASKS="1",
               SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0", SLURM_JOB_NODELIST="node1")
    assert export_distributed_env() == {} and "WORLD_SIZE" not in os.environ


def test_slurm_job_record_for_result_json():
    assert slurm_job({}) is None
    env = {"SLURM_JOB_ID": "12", "SLURM_ARRAY_JOB_ID": "10", "SLURM_ARRAY_TASK_ID": "2", "SLURM_NTASKS": "1",
           "SLURM_JOB_NODELIST": "node1", "SLURM_JOB_PARTITION": "local"}
    assert slurm_job(env) == {"job_id": "12", "array_job_id": "10", "array_task_id": "2", "restart_count": "0",
                              "nodelist": "node1", "ntasks": "1", "partition": "local"}
    assert slurm_job({**env, "SLURM_RESTART_COUNT": "1"})["restart_count"] == "1"  # after a requeue

