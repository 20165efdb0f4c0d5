# The two commands of the README: `make demo` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export TTSQ_DATA_DIR ?= $(CURDIR)/ttsq-data

.PHONY: demo test test-fast lint bench serve clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,gpu]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/ttsq demo

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
	rm -rf $(VENV) ttsq-data .pytest_cache *.egg-info
