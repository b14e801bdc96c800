"""Multi-process training through accelerate (2 CPU processes, gloo) and gradient accumulation.

One 2-process launch of tests/dist_worker.py trains every trainer (sft, reward, the seven preference
losses, quark) at per-rank batch 2; the same training in this process at batch 4 must give the same
logged losses and final trainable weights. Gradient accumulation (2 x 2) must equal batch 4 too, with
token-level losses normalised over all tokens of the step. CPU only: DDP over gloo; no GPU, NCCL,
FSDP or DeepSpeed runs here (docs/distributed.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"
CPU_CONFIG = REPO / "conf" / "accelerate" / "cpu.yaml"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dist_worker


def _launch(args: list[str], cwd: Path, timeout: int = 600,
            launcher: tuple[str, ...] = ("--config_file", str(CPU_CONFIG))) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([str(ACCELERATE), "launch", *launcher, "--main_process_port", "0",
                           *args], cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _assert_same(got: dict, want: dict, what: str) -> None:
    """Same logged losses and final trainable weights. Weights get 2e-5 absolute slack: Adam divides
    by sqrt(v), so float noise of the gradient all-reduce on near-zero gradients shows up at ~1e-6;
    one training step moves a weight by up to lr = 5e-3."""
    assert got.keys() == want.keys()
    for name, w in want.items():
        g = got[name]
        assert len(g["losses"]) == len(w["losses"]) > 0, (what, name)
        assert g["losses"] == pytest.approx(w["losses"], rel=1e-4, abs=1e-5), (what, name)
        assert g["weights"].keys() == w["weights"].keys(), (what, name)
        for k in w["weights"]:
            torch.testing.assert_close(g["weights"][k], w["weights"][k], rtol=1e-4, atol=2e-5,
                                       msg=lambda m, name=name, k=k: f"{what}: {name} {k}: {m}")


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return dist_worker.run(out, batch=4, grad_accum=1), out


@pytest.fixture(scope="module")
def one_process_batch_4(single_run):
    return single_run[0]


def test_training_moved_the_weights(one_process_batch_4, tmp_path):
    """The comparisons below mean something only if training changed the weights."""
    model, _ = dist_worker.fresh()
    start = dist_worker._trainable(model)
    moved = one_process_batch_4["sft"]["weights"]
    assert max((moved[k] - start[k]).abs().max().item() for k in start) > 1e-3


def test_grad_accumulation_equals_the_large_batch(one_process_batch_4, tmp_path):
    accumulated = dist_worker.run(tmp_path, batch=2, grad_accum=2)
    _assert_same(accumulated, one_process_batch_4, "2 micro-batches x 2 vs batch 4")


def test_two_processes_equal_one_process_at_twice_the_batch(single_run, tmp_path):
    one_process_batch_4, single_dir = single_run
    out, root = tmp_path / "run", tmp_path / "outputs"
    _launch([str(REPO / "tests" / "dist_worker.py"), str(out), "2", "1", str(root)], cwd=tmp_path)
    _assert_same(torch.load(out / "result.pt"), one_process_batch_4, "2 processes x batch 2 vs 1 x batch 4")

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    # The loss saw the DDP wrapper (training/logps.py unwraps it and still calls through it).
    assert all(r["model_types"] == ["DistributedDataParallel"] for r in ranks)
    # Reference log-probs (dpo, rdpo): computed once, on rank 0, and the same rows on both ranks.
    assert ranks[0]["reference_forwards"] > 0 and ranks[1]["reference_forwards"] == 0
    assert ranks[0]["reference_rows"] == ranks[1]["reference_rows"]
    single = json.loads((single_dir / "rank0.json").read_text())
    for k, rows in single["reference_rows"].items():
        torch.testing.assert_close(torch.tensor(ranks[1]["reference_rows"][k]), torch.tensor(rows), atol=1e-4, rtol=0)

    # stage=sft through the CLI under 2 ranks: only rank 0 wrote into outputs/, manifest says 2.
    writes = [json.loads((out / f"writes{r}.json").read_text()) for r in (0, 1)]
    root_s = str(root.resolve())
    assert writes[0] and all(w.startswith(root_s) for w in writes[0])
    assert writes[1] and not any(w.startswith(root_s) for w in writes[1])  # rank 1: its scratch copy only
    manifests = sorted(root.rglob("manifest.json"))
    assert {m.parent.parent.name for m in manifests} == {"rationalize", "sft"}
    assert all(json.loads(m.read_text())["world_size"] == 2 for m in manifests)
    assert not [w for w in writes[1] if Path(w).exists()]  # scratch copies removed afterwards


@pytest.mark.parametrize("launcher", [("--config_file", str(CPU_CONFIG)), ("--cpu", "--num_processes", "2")],
                         ids=["cpu-config", "cpu-flag"])
def test_cli_sft_under_accelerate_launch(tmp_path, launcher):
    """The command a user types: accelerate launch ... -m rationalign stage=sft model=tiny. With
    `--cpu --num_processes 2` accelerate itself starts one process; rationalign relaunches two."""
    proc = _launch(["-m", "rationalign", "stage=sft", "model=tiny", f"paths.root={tmp_path / 'out'}",
                    "data.max_labeled_per_task=4", "sft.train.epochs=1"], cwd=tmp_path, launcher=launcher)
    (manifest,) = (tmp_path / "out").glob("default/sft/*/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["world_size"] == 2 and (manifest.parent / "adapter" / "adapter_config.json").exists()
    assert proc.stdout.count("[rationalign] stage sft ->") == 2  # both ranks ran it


def test_sharded_full_logits_path_equals_the_head_on_completion_rows(monkeypatch):
    """FSDP/DeepSpeed take the full-logits path (the LM head runs inside the model's forward); it must
    give the same log-probs as the completion-rows path used for plain and DDP models."""
    from rationalign.training import logps
    from rationalign.training.chat import encode_pair

    model, tok = dist_worker.fresh()
    feats = [dict(zip(("prompt_ids", "completion_ids"), encode_pair(tok, e.prompt, e.completion, 64, layout=dist_worker.LAYOUT)))
             for e in dist_worker.sft_examples()[:4]]
    batch = logps.collate_completion(feats, tok.pad_token_id)
    args = (batch["input_ids"], batch["attention_mask"], batch["labels"])
    want, n = logps.sequence_logps(model, *args)
    monkeypatch.setattr(logps, "is_sharded", lambda m: True)
    got, n2 = logps.sequence_logps(model, *args)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    assert torch.equal(n, n2)
    ref, _ = logps.full_sequence_logps_reference(model, *args)
    torch.testing.assert_close(want, ref, rtol=1e-5, atol=1e-4)


def test_rank0_alone_cannot_start_a_training_stage(tmp_path, monkeypatch):
    """A stage rank 0 runs alone (no collective) that needs an unbuilt training stage must stop with an
    error: the training would wait for ranks that are waiting for rank 0."""
    from omegaconf import OmegaConf

    from rationalign import distributed as dist
    from rationalign.registry import Entry
    from rationalign.stages.base import STAGES, Context, Stage, run_stage

    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "is_main", lambda: True)
    monkeypatch.setattr(dist, "_state", lambda: pytest.fail("no process group in this test"))

    def train(ctx, out):
        return {}

    def solo(ctx, out):
        ctx.require("t_train")  # not in its upstream: built from inside
        return {}

    # registered for this test only (monkeypatch removes them again)
    monkeypatch.setitem(STAGES._entries, "t_train", Entry("t_train", Stage("t_train", train, collective=True)))
    monkeypatch.setitem(STAGES._entries, "t_solo", Entry("t_solo", Stage("t_solo", solo)))
    monkeypatch.setattr(dist, "barrier", lambda: None)
    ctx = Context(cfg=OmegaConf.create({"seed": 0}), workdir=tmp_path)
    with pytest.raises(RuntimeError, match="stage t_train trains"):
        run_stage(ctx, "t_solo")
    assert not dist.in_solo()
