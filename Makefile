# The two commands of the README: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv is rebuilt when pyproject.toml or the lock changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/test.txt | sha1sum | cut -c1-12)
# `make lock` only: pip-tools in a throwaway venv of its own (it is not a dependency of the project).
PIP_TOOLS_VERSION := 7.6.2
LOCK_VENV := .cache/lock-venv
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" PIP_FIND_LINKS= $(LOCK_VENV)/bin/pip-compile -q --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-find-links
# Hypothesis profile of `make test` (tests/conftest.py): ci is derandomized and has no wall-time checks.
HYPOTHESIS_PROFILE ?= ci

.PHONY: venv tools test lint typecheck demo bench compiled clean lock prove

# Every package comes from the hashed lock (pip refuses anything unpinned or with another hash); the
# project itself is installed last, without dependencies and without fetching a build backend.
$(STAMP): pyproject.toml requirements/test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements/test.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
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
# (started by tests/conftest.py unless KAFKA_BOOTSTRAP_SERVERS is set; jars fetched once with Maven),
# with branch coverage and its floor (pyproject.toml). PYTEST_ARGS: extra pytest arguments (a selection).
test: venv tools lint typecheck
	$(PY) -m connector.devtools.kafka_local fetch
	$(PY) -m pytest --hypothesis-profile=$(HYPOTHESIS_PROFILE) --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

# `make test` three times on a fresh clone of HEAD while another process keeps one core busy (the issue's
# proof that the suite passes on a busy machine); each run's wall time and status, non-zero if one failed.
prove:
	scripts/prove-under-load

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
	$(PY) bench/declarative_map.py
	$(PY) bench/declarative_map.py --compiled
	$(PY) bench/webhooks.py

# The optional compiled mapping layer (setup.py), unpacked into build/compiled: PYTHONPATH=build/compiled.
compiled: venv
	scripts/build-compiled

# Regenerates the hashed locks from pyproject.toml (and requirements/build.in) at the newest versions allowed:
# test.txt (venv, CI), runtime.txt (the image, with the msk extra; the same versions as test.txt) and build.txt (the image's
# compile stage). Resolved for this interpreter (CPython 3.11 on Linux); hashes cover every published file.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/pip install -q "pip-tools==$(PIP_TOOLS_VERSION)"; }
	$(PIP_COMPILE) --upgrade --extra test -o requirements/test.txt pyproject.toml
	$(PIP_COMPILE) -c requirements/test.txt --extra msk -o requirements/runtime.txt pyproject.toml
	$(PIP_COMPILE) -c requirements/test.txt -o requirements/build.txt requirements/build.in

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
