# Two entry points: `make run` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPUS := data/corpus
MODEL := models/default

.PHONY: install run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml setup.py training/native/word2vec_kernel.cpp
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wordvec needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel ninja
	# Pinned: an unpinned torch resolves to a multi-gigabyte CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# No build isolation: the native kernel compiles against the torch just installed.
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	@$(BIN)/python -c 'import training.kernels as k; print("native kernel:", "built" if k.native_available() else "NOT built (PyTorch fallback)")'
	touch $(STAMP)

install: $(STAMP)

$(MODEL)/manifest.json: | $(STAMP)
	$(BIN)/wordvec train $(CORPUS) --output $(MODEL)

run: $(MODEL)/manifest.json
	$(BIN)/wordvec evaluate $(MODEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/train_vs_gensim.py

clean:
	rm -rf $(VENV) build *.egg-info training/_native*.so
