# Prometheus — every target sets itself up on a fresh machine (creates .venv and installs).
#   make run     build the whole graph on the configured source (default: bundled S&P 500 data)
#   make test    the whole test suite (what CI runs)
#   make ui      Dagster UI (webserver + daemon) on http://127.0.0.1:3000
#   make bench   the benchmarks in bench/
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test ui bench summary sql install chromium clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.11 not found: install Python 3.11 first"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The browser test drives Debian's chromium package (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver) \
	  || { echo "could not install Debian's chromium package (needs root): apt-get install chromium chromium-driver"; exit 1; }

install: $(STAMP) chromium

run: $(STAMP)
	$(BIN)/prometheus build

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

ui: $(STAMP)
	$(BIN)/prometheus ui

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

summary: $(STAMP)
	$(BIN)/prometheus summary

sql: $(STAMP)
	$(BIN)/prometheus sql "$(Q)"

clean:
	rm -rf data .dagster_home
