# The two commands of the README: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: venv test lint typecheck unit demo kafka bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# The whole suite: lint, types, unit and integration tests against a real Kafka broker
# (started by tests/conftest.py unless KAFKA_BOOTSTRAP_SERVERS is set).
test: venv lint typecheck
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
