# The one entry point for people and CI. `make demo` and `make test` install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast test-browser test-cluster lint fmt typecheck check bench bench-smoke kafka-up kafka-down clean system-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Debian packages the full test run needs (PostgreSQL server, Chromium); run as root.
system-deps:
	@bash deploy/system-deps.sh

## The main job: local Kafka, the hub, an SMTP sink and the simulator, end to end.
demo: install
	$(PY) -m hub.demo

## Every test: starts its own Kafka broker(s), SMTP server, PostgreSQL and Chromium.
## The browser tests run in a pytest process of their own: Playwright's sync API keeps an
## event loop running in the main thread, which pytest-asyncio's tests cannot share.
test: install system-deps
	$(PY) -m pytest -m "not browser" $(PYTEST_ARGS)
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

## Unit and handler tests only (no broker).
test-fast: install
	$(PY) -m pytest -m "not kafka and not cluster and not slow and not browser and not postgres" $(PYTEST_ARGS)

## The dashboard in Debian's Chromium (Playwright).
test-browser: install system-deps
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

## Long fault tests on the three-node cluster.
test-cluster: install
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy hub topics consumers producers deploy

typecheck: install
	$(VENV)/bin/mypy hub topics consumers producers deploy

check: lint test

bench: install
	$(PY) -m bench.run

bench-smoke: install
	$(PY) -m bench.run --smoke

kafka-up: install
	$(VENV)/bin/hub kafka up

kafka-down: install
	$(VENV)/bin/hub kafka down

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
