# Every target sets up .venv first (created if missing), so on a fresh machine
#   make train   runs the main job on the embedded synthetic data, and
#   make test    runs the whole test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROFILE ?= paper

.DEFAULT_GOAL := help
.PHONY: help install train test lint format table2 bench-data clean-venv

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools

train: $(STAMP)  ## quickstart: MobileViTPose-XXS on synthetic data, CPU, then COCO AP
	$(VENV)/bin/mvp-train experiment=quickstart

test: $(STAMP)  ## the whole test suite (CPU, offline)
	WANDB_MODE=disabled $(PY) -m pytest

lint: $(STAMP)  ## ruff check + format check
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: $(STAMP)  ## ruff fix + format
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests

table2: $(STAMP)  ## parameters and MACs of every model config -> reports/table2.{md,json}
	$(VENV)/bin/mvp-table2 --out-dir reports

bench-data: $(STAMP)  ## data pipeline samples/s on one core -> reports/bench_data.json
	$(VENV)/bin/mvp-bench-data --out reports/bench_data.json

clean-venv:  ## remove .venv
	rm -rf $(VENV)
