# kassa — `make run` serves everything; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One venv, two stamps: `make run` installs what the service needs, `make test`/`make lint`
# add the test tools. Each stamp is newer than pyproject.toml once its install succeeded.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install install-dev run test bench lint clean

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# .[dev] includes everything `.` needs, so it satisfies `make run` too.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: install
	$(BIN)/kassa dev

test: install-dev
	$(BIN)/pytest -q

bench: install-dev
	$(BIN)/python -m bench.payments

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/kassa/domain src/kassa/representations src/kassa/services src/kassa/ledger

# As root in a private directory the embedded server's data lives elsewhere (README "Two
# commands"), reached through the .kassa/pgdata symlink: remove it there too.
clean:
	@target=$$(readlink -f .kassa/pgdata 2>/dev/null); case "$$target" in \
	  */kassa-embedded/*/pgdata|/var/lib/kassa/embedded/*/pgdata) rm -rf "$${target%/pgdata}";; \
	esac
	rm -rf $(VENV) .kassa .pytest_cache .hypothesis
