# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   - trains a small model under `wattwise run` and prints its footprint
#   make test   - lint, type-check and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; an unpinned torch would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[torch]'
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev,all]'
	touch $@ $(VENV)/.demo-deps

demo: $(VENV)/.demo-deps
	$(BIN)/python examples/demo.py

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests examples benchmarks scripts/*.py
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .wattwise build *.egg-info
