# TrustPay — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: run test bench lint typecheck install install-dev system-deps clean

$(BIN)/uv:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv==0.13.9

$(VENV)/.installed: pyproject.toml uv.lock | $(BIN)/uv
	$(BIN)/uv sync --frozen --inexact -q
	touch $@

$(VENV)/.installed-dev: pyproject.toml uv.lock | $(BIN)/uv
	$(BIN)/uv sync --frozen --inexact --extra dev -q
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: install, migrate the embedded SQLite database, seed demo data, serve on :8000
run: install
	$(BIN)/trustpay migrate
	$(BIN)/trustpay demo
	TRUSTPAY_WEBHOOK_ALLOW_PRIVATE=1 $(BIN)/trustpay serve --host 127.0.0.1 --port 8000

## system-deps: Debian packages the tests need (PostgreSQL server, Chromium)
system-deps:
	@bash scripts/system-deps.sh

## test: lint, type-check, then the whole suite on SQLite and on a throwaway PostgreSQL
test: install-dev system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	bash scripts/test.sh

## bench: benchmarks (print figures and ratios; not tests)
bench: install-dev system-deps
	bash scripts/bench.sh

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench || true

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
