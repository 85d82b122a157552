# The two commands a newcomer needs: `make serve` and `make test`.
# Each creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck unit venv clean deps-system

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/ugem serve

# System peers the tests talk to over loopback (redis-server, swaks, dnsmasq,
# Postfix's smtp-source). Installed when missing and we are root; tests that
# need a missing one are skipped with the reason otherwise.
deps-system:
	@bash tests/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: $(STAMP) deps-system lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
