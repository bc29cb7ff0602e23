# The two commands of the README: `make run` and `make test`. Both go through `make install`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# `make run` is the development demo; production sets CITIZEN_ENV itself.
export CITIZEN_ENV ?= development

.PHONY: install run test lint typecheck unit bench clean-data

install: $(STAMP)

# Reinstalls only when pyproject.toml changes (or the venv is missing).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/citizen serve --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy $(wildcard backend identity card payments integrations mock_terminals tests bench)

unit: install
	CITIZEN_ENV=test $(BIN)/python -m pytest

test: lint typecheck unit

bench: install
	$(BIN)/citizen bench all

clean-data:
	rm -rf var
