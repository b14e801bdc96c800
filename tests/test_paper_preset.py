"""experiment=paper_rationalign_8b composes, validates and carries the paper's settings (App. B.1, B.3, B.4)."""

from __future__ import annotations

import subprocess
import sys

from rationalign.components import import_components
from rationalign.runner import compose
from rationalign.validate import validate


def test_paper_preset_composes_and_validates():
    import_components()
    cfg = compose(["experiment=paper_rationalign_8b"])
    validate(cfg, data=False)  # the machine checks (vLLM installed, data read) belong to the GPU machine that runs it
    assert cfg.stage.name == "pipeline" and list(cfg.task.names) == [
        "gec", "fluency", "clarity", "coherence", "paraphrase", "neutralization", "simplification", "formality"]
    # Sec. 4: Llama-3.1-8B with LoRA r=16, alpha=16, dropout 0.05 on q, k, v, o (App. B.4)
    assert cfg.model.path == "meta-llama/Llama-3.1-8B" and cfg.model.source == "hf"
    lora = cfg.model.lora
    assert (lora.r, lora.alpha, lora.dropout) == (16, 16, 0.05)
    assert list(lora.target_modules) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.prompts.layout == "plain" and cfg.rationale.name == "teacher" and cfg.rationale.position == "after"
    # App. B.1: 10k labeled and ~40k unlabeled per task, as caps
    assert (cfg.data.max_labeled_per_task, cfg.data.max_unlabeled_per_task) == (10000, 40000)

    def effective(t):
        return t.batch_size * t.grad_accum

    # App. B.4: SFT 4 epochs, batch 128, lr 5e-4; WA lr 1e-5; RM lr 3e-4, same setting
    for node, lr in ((cfg.sft.train, 5e-4), (cfg.kfold.train, 5e-4), (cfg.align.train, 1e-5),
                     (cfg.reward.train, 3e-4)):
        assert (node.epochs, effective(node), node.lr) == (4, 128, lr)
    assert cfg.reward.per_task_adapters is True
    assert (cfg.kfold.k, cfg.kfold.n_samples, cfg.sample.m) == (5, 16, 16)  # K=5, N=M=16
    assert (cfg.loss.name, cfg.loss.lam, cfg.loss.beta, cfg.loss.gamma) == ("mpo", 0.8, 0.01, 1.0)
    assert cfg.pairs.keep_fraction == 0.2  # Sec. 3.3
    s = cfg.engine.sampling  # App. B.3
    assert (s.temperature, s.top_p, s.top_k, s.presence_penalty, s.max_new_tokens) == (1.2, 0.9, 50, 1.2, 2048)
    assert cfg.sample.max_new_tokens == 2048 and cfg.engine.name == "vllm"


def test_paper_preset_cfg_job_prints():
    proc = subprocess.run([sys.executable, "-m", "rationalign", "--cfg", "job", "experiment=paper_rationalign_8b"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "path: meta-llama/Llama-3.1-8B" in proc.stdout and "per_task_adapters: true" in proc.stdout
