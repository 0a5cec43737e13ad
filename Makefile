# The two commands of the README: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: venv tools test lint typecheck demo bench compiled clean

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

# Debian's prometheus (promtool) and docker-compose, and helm: the deployment files are validated by tests.
tools:
	scripts/install-test-tools

# The whole suite: lint, types, unit and integration tests against a real Kafka broker
# (started by tests/conftest.py unless KAFKA_BOOTSTRAP_SERVERS is set; jars fetched once with Maven).
test: venv tools lint typecheck
	$(PY) -m connector.devtools.kafka_local fetch
	$(PY) -m pytest

# The product end to end on this machine: broker, fake Customer.io, connector, sample traffic, report.
demo: venv
	$(PY) scripts/demo.py

# Benchmarks (not tests): figures and ratios measured in the same run; see docs/benchmarks.md.
# Each CPU-bound bench runs on the sources and on the mypyc-compiled mapping layer (`make compiled`).
bench: venv compiled
	$(PY) bench/sink_throughput.py
	$(PY) bench/sink_throughput.py --replicas 2 --compiled
	$(PY) bench/sink_path.py
	$(PY) bench/sink_path.py --compiled
	$(PY) bench/mapping.py
	$(PY) bench/mapping.py --compiled
	$(PY) bench/webhooks.py

# The optional compiled mapping layer (setup.py), unpacked into build/compiled: PYTHONPATH=build/compiled.
compiled: venv
	scripts/build-compiled

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
