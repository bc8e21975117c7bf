# kassa — `make run` serves everything; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/kassa dev

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.payments

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/kassa/domain src/kassa/services src/kassa/ledger

clean:
	rm -rf $(VENV) .kassa .pytest_cache .hypothesis
