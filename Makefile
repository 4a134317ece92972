# The two contracts: `make demo` and `make test`, each from nothing on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest phoenix redis bench clean test-pythons

$(STAMP): pyproject.toml requirements-dev.txt integrations/langchain/pyproject.toml integrations/llamaindex/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[yaml,otlp,redis]' -e integrations/langchain -e integrations/llamaindex -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/agent-guard demo

lint: $(STAMP)
	$(VENV)/bin/ruff check agent_guard integrations tests benchmarks examples scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict agent_guard integrations/langchain/agent_guard_langchain integrations/llamaindex/agent_guard_llamaindex

# Arize Phoenix in its own venv (.venv-phoenix) for the end-to-end audit test; idempotent (stamp file).
phoenix:
	PYTHON=$(PYTHON) bash scripts/ensure-phoenix.sh

# redis-server for the Redis store tests (Debian package; idempotent, a no-op when installed).
redis:
	bash scripts/ensure-redis.sh

pytest: $(STAMP) phoenix redis
	bash scripts/run-tests.sh

test: lint typecheck pytest

# The core suite (no framework adapters, no Redis/Phoenix/notebooks) on every other supported Python.
# `make test` stays the Python 3.11 contract; this target is the package's python_requires check.
PYTHONS ?= 3.10 3.12 3.13
test-pythons:
	@set -e; for v in $(PYTHONS); do \
	  py=$$(bash scripts/find-python.sh $$v); \
	  venv=.venv-py$$v; \
	  if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ] || [ requirements-core-tests.txt -nt $$venv/.installed ]; then \
	    $$py -m venv $$venv && $$venv/bin/python -m pip install --quiet --upgrade pip && \
	    $$venv/bin/python -m pip install --quiet -e '.[yaml,otlp,redis]' -r requirements-core-tests.txt && touch $$venv/.installed; \
	  fi; \
	  echo "== Python $$v"; \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider -m "not redis and not phoenix and not notebook" \
	    --ignore=tests/integrations --ignore=tests/stores tests; \
	done

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-phoenix .venv-py* .pytest_cache .mypy_cache .ruff_cache
