# The two commands of the README: `make demo` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The demo needs the base install only (no torch, no test tools): a venv of its own.
DEMO_VENV ?= .venv-demo
DEMO_BIN := $(DEMO_VENV)/bin
export TTSQ_DATA_DIR ?= $(CURDIR)/ttsq-data

.PHONY: demo test test-fast lint bench serve clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,gpu]'
	touch $@

$(DEMO_BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_BIN)/python -m pip install --quiet --upgrade pip
	$(DEMO_BIN)/python -m pip install --quiet -e .
	touch $@

demo: $(DEMO_BIN)/.installed
	$(DEMO_BIN)/ttsq demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check engine worker api ttsq tests bench
	$(BIN)/mypy engine worker api ttsq
	$(BIN)/lint-imports --no-cache

bench: $(BIN)/.installed
	$(BIN)/python bench/engine.py

serve: $(BIN)/.installed
	$(BIN)/ttsq serve

clean:
	rm -rf $(VENV) $(DEMO_VENV) ttsq-data .pytest_cache *.egg-info
