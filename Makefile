# Two entry points: `make run` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPUS := data/corpus
MODEL := models/default
# Where `make run` keeps model versions, uploads and jobs (see docs/models.md).
DATA ?= var/wordvec
HOST ?= 127.0.0.1
PORT ?= 8000
# Package index for torch alone, e.g. https://download.pytorch.org/whl/cpu.
# Empty: pip's configured indexes, which serve the CPU build only where pip is
# set up for it (a local wheel directory, as on this project's machines); on
# Linux x86-64, PyPI's torch is the multi-gigabyte CUDA build. That index
# carries torch's dependencies too, so it stands in for PyPI on this one line.
TORCH_INDEX ?=

.PHONY: install run model test lint typecheck pytest bench bench-serving reliability clean

$(STAMP): pyproject.toml setup.py training/native/word2vec_kernel.cpp
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wordvec needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel ninja
	# Pinned, and from TORCH_INDEX when given: see TORCH_INDEX above.
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# No build isolation: the native kernel compiles against the torch just installed.
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	@$(BIN)/python -c 'import training.kernels as k; print("native kernel:", "built" if k.native_available() else "NOT built (PyTorch fallback)")'
	touch $(STAMP)

install: $(STAMP)

$(MODEL)/manifest.json: | $(STAMP)
	$(BIN)/wordvec train $(CORPUS) --output $(MODEL)

# Train the default model (once) and print its scores, without serving it.
model: $(MODEL)/manifest.json
	$(BIN)/wordvec evaluate $(MODEL)

# Train the default model into the data directory on first use, print its
# scores, then serve it (web page at /, API docs at /docs) with a job worker
# for fine-tunes, until Ctrl-C.
run: $(STAMP)
	$(BIN)/wordvec init --data-dir $(DATA) --corpus $(CORPUS)
	$(BIN)/wordvec evaluate $(DATA)/models/$$(cat $(DATA)/active)
	@echo "wordvec: serving on http://$(HOST):$(PORT)/ (API docs at /docs); Ctrl-C stops"
	@$(BIN)/wordvec worker --data-dir $(DATA) & worker=$$!; \
	trap 'kill -INT $$worker 2>/dev/null; wait $$worker' EXIT; \
	$(BIN)/wordvec serve --data-dir $(DATA) --host $(HOST) --port $(PORT) --workers 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# The long run of RELIABILITY.md: the API fuzzed with 1000 cases per operation,
# then every fault and load scenario with real processes (about 6-7 minutes).
reliability: $(STAMP)
	$(BIN)/python benchmarks/fuzz_api.py --examples 1000
	$(BIN)/python benchmarks/reliability.py --json reliability.json

bench: $(STAMP)
	$(BIN)/python benchmarks/train_vs_gensim.py

# Issue 3's serving benchmark in one run: in-process search at ~56k x 300 (real)
# and 1M x 100, then HTTP load and memory (needs wrk); about 10 minutes.
bench-serving: $(STAMP)
	$(BIN)/python benchmarks/serving.py

clean:
	rm -rf $(VENV) build *.egg-info training/_native*.so
