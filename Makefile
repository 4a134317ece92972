# The two contracts: `make demo` and `make test`, each from nothing on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest phoenix redis bench clean

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

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-phoenix .pytest_cache .mypy_cache .ruff_cache
