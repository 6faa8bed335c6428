# Every target sets up .venv first (created if missing), so on a fresh machine
#   make train   runs the main job on the embedded synthetic data, and
#   make test    runs the whole test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROFILE ?= paper
RUNS ?= runs
REPORTS ?= reports
DATA ?= data
SWEEP := $(RUNS)/table3-$(PROFILE)-$(shell date +%Y%m%d-%H%M%S)

.DEFAULT_GOAL := help
.PHONY: help install train test test-fast lint format table2 bench bench-data bench-train bench-deploy reproduce-table3 clean-venv

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,deploy]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools and the deploy extra

train: $(STAMP)  ## quickstart: MobileViTPose-XXS on synthetic data, CPU, then COCO AP
	$(VENV)/bin/mvp-train experiment=quickstart

# Two workers, each taking whole test files (their module fixtures are made once).
test: $(STAMP)  ## the whole test suite (CPU, offline)
	WANDB_MODE=disabled $(PY) -m pytest -n 2 --dist loadfile

test-fast: $(STAMP)  ## the suite without the slow end-to-end runs (the inner loop)
	WANDB_MODE=disabled $(PY) -m pytest -n 2 --dist loadfile -m "not slow"

lint: $(STAMP)  ## ruff, the type checker (mypy) and the layer contracts (import-linter)
	$(VENV)/bin/ruff check src tests notebooks
	$(VENV)/bin/ruff format --check src tests notebooks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)  ## ruff fix + format
	$(VENV)/bin/ruff check --fix src tests notebooks
	$(VENV)/bin/ruff format src tests notebooks

table2: $(STAMP)  ## params and MACs of every model config (+AP/AR of ACCURACY_RUNS=dirs) -> reports/table2.{md,json}
	$(VENV)/bin/mvp-table2 --out-dir $(REPORTS) $(if $(ACCURACY_RUNS),--runs $(ACCURACY_RUNS))

bench: $(STAMP)  ## inference latency/throughput, eager vs ONNX Runtime (+CUDA) -> reports/bench_infer.{json,md}
	$(VENV)/bin/mvp-bench-infer --out-dir $(REPORTS)

bench-train: $(STAMP)  ## GPU training step images/s, real data vs in-memory (data-bound?) -> reports/bench_train.json
	$(VENV)/bin/mvp-bench-train --out $(REPORTS)/bench_train.json

# The newest quickstart run's best checkpoint (make train), unless CKPT=... names another.
CKPT ?= $(lastword $(sort $(wildcard $(RUNS)/train/quickstart/*/checkpoints/best*.ckpt)))
bench-deploy: $(STAMP)  ## each export format's AP (CKPT, default: newest quickstart) and latency vs eager -> reports/deploy.{json,md}
	@test -n "$(CKPT)" || { echo "no quickstart checkpoint under $(RUNS)/train/quickstart: run make train first, or pass CKPT=path"; exit 2; }
	$(VENV)/bin/mvp-bench-deploy --checkpoint $(CKPT) --out-dir $(REPORTS)

# MMPOSE_VENV=<venv of ../shared/tools/mmpose/install_mmpose.sh>: the reference's pipeline is
# timed first, on the same images, and the report holds both side by side.
SHARED ?= ../shared
bench-data: $(STAMP)  ## data pipeline samples/s on one core (+ MMPose beside it: MMPOSE_VENV=...) -> reports/bench_data.json
ifdef MMPOSE_VENV
	$(MMPOSE_VENV)/bin/python $(SHARED)/tools/mmpose/pipeline_bench.py \
		--ann $(SHARED)/data/coco_mini/annotations/person_keypoints_train2017.json \
		--img-dir $(SHARED)/data/coco_mini/train2017 -n 400 --codec udp --modes 'dataset[i]' \
		--json $(REPORTS)/bench_data_mmpose.json
	$(VENV)/bin/mvp-bench-data --out $(REPORTS)/bench_data.json \
		--coco-mini $(SHARED)/data/coco_mini --reference $(REPORTS)/bench_data_mmpose.json
else
	$(VENV)/bin/mvp-bench-data --out $(REPORTS)/bench_data.json --coco-mini $(SHARED)/data/coco_mini
endif

# PROFILE=paper: the paper's recipe on COCO under $(DATA)/coco, four GPU runs one after another.
# PROFILE=smoke: the same sweep on synthetic data on CPU in minutes (what CI runs).
reproduce-table3: $(STAMP)  ## RQ2 sweep (XXS/S x plain/imagenet) + reports/table3.{md,json} + Figs. 2-3
ifeq ($(PROFILE),smoke)
	test -f $(DATA)/synthetic_smoke/annotations/person_keypoints_val2017.json || \
		$(VENV)/bin/mvp-synth $(DATA)/synthetic_smoke --num-train 40 --num-val 8 --seed 0
	$(VENV)/bin/mvp-pretrain-smoke --data-root $(DATA)/synthetic_smoke --out-dir $(DATA)/smoke_pretrained --overwrite
	$(VENV)/bin/mvp-train -m experiment=table3_smoke paths.data_dir=$(DATA) hydra.sweep.dir=$(SWEEP)
	$(VENV)/bin/mvp-report-table3 --runs $(SWEEP) --out-dir $(REPORTS) --smoke
else ifeq ($(PROFILE),paper)
	$(VENV)/bin/mvp-train -m experiment=table3 paths.data_dir=$(DATA) hydra.sweep.dir=$(SWEEP)
	$(VENV)/bin/mvp-report-table3 --runs $(SWEEP) --out-dir $(REPORTS)
else
	@echo "PROFILE=$(PROFILE): use PROFILE=paper or PROFILE=smoke" && exit 2
endif

clean-venv:  ## remove .venv
	rm -rf $(VENV)
