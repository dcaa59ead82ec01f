# mlops_dagster: `make run` (the whole lifecycle, headless) and `make test` (the test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR ?= false

.PHONY: install run dev monitor-ui mlflow-ui lint format test test-fast bench lock clean generate serve stop docs screenshot

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	@command -v java >/dev/null || { echo "java not found: Spark needs a JDK 17 on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/mlops prepare-spark
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## run: the whole lifecycle on the local target, then a summary
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mlops run

## dev: the Dagster UI (http://127.0.0.1:3000) with this code location and a persistent DAGSTER_HOME; its
## runs' Spark is one warm Spark Connect server (make stop stops it); make dev ARGS=--cold: a JVM per run
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mlops dev $(ARGS)

## monitor-ui: Evidently's UI (http://127.0.0.1:8000) on every drift and performance report, per use case
monitor-ui: install
	$(BIN)/evidently ui --workspace "$${MLOPS_HOME:-.mlops}/evidently" --host 127.0.0.1 --port 8000

## mlflow-ui: MLflow's UI (http://127.0.0.1:5000) on the local tracking store and registry
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$${MLOPS_HOME:-.mlops}/mlflow/mlflow.db" --host 127.0.0.1 --port 5000

## serve: the local serving gateway in the foreground; stop: stop the one `make run` left running, and the
## Spark Connect server of `make dev`
serve: install
	$(BIN)/mlops serve

stop: install
	$(BIN)/mlops stop

## generate: another landing file (make generate ARGS="--drifted --seed 7")
generate: install
	$(BIN)/mlops generate $(ARGS)

## docs: build the documentation site (mkdocs.yml, docs/) into .site/; strict: a broken link or anchor fails it,
## and so does a configuration reference that is not what the schema generates (the message says the command)
docs: install
	$(BIN)/python -m mlops_dagster.settings.reference --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir .site

## screenshot: capture the Dagster UI's asset graph into docs/images/asset-graph.png (needs Chromium)
screenshot: install
	$(BIN)/python docs/screenshot.py

## lint: ruff's lint rules and format check (pyproject.toml [tool.ruff]); format: apply ruff's format
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## test: lint, the docs build, then the full suite (unit + integration: real Dagster runs, Spark, Delta, MLflow)
## (TEST_WORKERS processes, each test file in one of them: TEST_WORKERS=0 runs it in this process)
TEST_WORKERS ?= 2
test: install lint docs
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## test-fast: unit tests only
test-fast: install
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

## bench: time the lifecycle and the code location's import (numbers go to docs/benchmarks.md)
bench: install
	$(BIN)/python bench/lifecycle.py

## lock: refresh constraints.txt from a fresh resolve
lock:
	rm -rf /tmp/mlops-lock && $(PYTHON) -m venv /tmp/mlops-lock
	/tmp/mlops-lock/bin/pip install --quiet -e '.[test]'
	{ echo "# Exact versions the project is tested with (pip freeze of a fresh install); make installs with these."; \
	  echo "# Refresh: make lock"; /tmp/mlops-lock/bin/pip freeze --exclude-editable; } > constraints.txt

## clean: forget all local state (lakehouse, MLflow, Dagster runs, reports)
clean: stop
	rm -rf .mlops $(DAGSTER_HOME)
