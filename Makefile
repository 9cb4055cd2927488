# The two set-up commands of the README. Both create .venv (if missing) and install the
# project into it from pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODE ?= full
DEVICE ?= auto

.PHONY: book test install

$(BIN)/recos-book: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/recos-book

## make book: execute every chapter (full, faithful mode by default) and build the HTML book.
book: install
	$(BIN)/recos-book run --mode $(MODE) --device $(DEVICE) --out _build

## make test: unit tests, every chapter through papermill in quick mode, the book build.
test: install
	$(BIN)/python -m pytest -q
