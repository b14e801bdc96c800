#!/usr/bin/env bash
# The GPU check, ready to run on one GPU machine with torch, transformers, peft and accelerate but no
# network (the H200 of docs/distributed.md). Run from the repo root; within 8 minutes it runs the demo
# pipeline on CUDA in bf16 with larger budgets, prints tokens/s per stage and the report, then QLoRA
# (bitsandbytes) and engine=vllm where those are importable. It fails loudly (exit 1) rather than fall
# back to the CPU: no CUDA, nothing allocated on the GPU, or a carried wheel that does not work.
#
# Prepare the wheels on a machine that reaches PyPI (about 47 MB with bitsandbytes):
#   experiments/gpu_wheels.sh .whl
# then carry .whl to the GPU machine with the repo and run:
#   bash experiments/gpu_check.sh            # results also in $OUT/gpu_check.json when OUT is set
# vLLM is not among the wheels: vllm pins another torch and CUDA build than the machine's, so it cannot
# travel; the script says so and the engine=vllm path stays tested only against tests/fake_vllm.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${WHEELS:-.whl}"
PY="${PYTHON:-python3}"
LIMIT="${GPU_CHECK_TIMEOUT:-450}"   # seconds for the driver; the installs take well under a minute

"$PY" - <<'PYEOF' || { echo "GPU CHECK FAILED: no CUDA device visible to torch"; exit 1; }
import sys, torch
sys.exit(0 if torch.cuda.is_available() else 1)
PYEOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

SITE=/tmp/rationalign-site
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no wheels in $WHEELS: using what is installed"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
TOK_ARGS=()
[[ -d "$WHEELS/tokenizer" ]] && TOK_ARGS=(--tokenizer "$WHEELS/tokenizer")
JSON_ARGS=()
[[ -n "${OUT:-}" ]] && JSON_ARGS=(--json "$OUT/gpu_check.json")
timeout "$LIMIT" "$PY" experiments/gpu_check.py --root /tmp/rationalign-gpu-check "${TOK_ARGS[@]}" "${JSON_ARGS[@]}" "$@"
