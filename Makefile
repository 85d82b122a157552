# The two commands a newcomer needs: `make serve` and `make test`.
# Each creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck unit venv clean deps-system lock

# Everything installs from requirements.lock (exact versions with their hashes,
# the runtime and the dev extra, for Linux and Python 3.11); pyproject.toml
# holds the bounds the lock is compiled from. `pip check` fails when the lock
# no longer satisfies pyproject.toml: run `make lock` then.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# Regenerate requirements.lock from pyproject.toml after changing a dependency
# or its bounds, then commit both. Pins that still satisfy the bounds are kept;
# `make lock LOCKFLAGS=--upgrade` moves every pin to the newest release allowed
# (`LOCKFLAGS='--upgrade-package fastapi'` for one). Run it on Linux with
# Python 3.11, the platform the lock is for (uvloop's marker is kept).
LOCKFLAGS ?=
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'pip-tools>=7.4,<8'
	$(BIN)/pip-compile -q --extra dev --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links $(LOCKFLAGS) \
		--output-file requirements.lock pyproject.toml

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/ugem serve

# System peers the tests talk to over loopback (redis-server, swaks, dnsmasq,
# Postfix's smtp-source). Installed when missing and we are root; tests that
# need a missing one are skipped with the reason otherwise, or fail with
# UGEM_TEST_REQUIRE_PEERS=1 (as .ci/run sets it; see tests/support/peers.py).
deps-system:
	@bash tests/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The unit tests only (tests/unit); `make test` runs the whole suite.
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: $(STAMP) deps-system lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
