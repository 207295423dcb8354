# BehaviorLM — the two commands in the README, plus a few helpers.
#   make quickstart   create .venv (CPU) and run the main job on the embedded default
#   make test         create .venv if needed, lint, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.behaviorlm-installed

.PHONY: quickstart test lint bench env clean-env shipped-data

$(STAMP): pyproject.toml scripts/install_cpu_env.sh
	VENV=$(VENV) bash scripts/install_cpu_env.sh
	touch $(STAMP)

env: $(STAMP)

MODEL_DIR ?= models/SmolLM2-135M-Instruct

# The main job: the whole progressive pipeline on the embedded default (synthetic data + SmolLM2-135M, CPU).
quickstart: $(STAMP)
	$(VENV)/bin/behaviorlm model prepare-default --out $(MODEL_DIR)
	$(VENV)/bin/behaviorlm run yaml_recipes/smollm2-135m-cpu/pipeline.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/bench_windowing.py
	$(VENV)/bin/behaviorlm model prepare-default --out $(MODEL_DIR)
	[ -f data/behavior/test_balanced.jsonl ] || $(VENV)/bin/behaviorlm prepare --synthetic --dataset-dir data \
		--name behavior --tokenizer $(MODEL_DIR)
	$(PY) benchmarks/bench_scoring.py --model $(MODEL_DIR) --data data/behavior/test_balanced.jsonl

clean-env:
	rm -rf $(VENV)

# The small demo dataset shipped in dataset_info/ (tests check it is reproducible).
SHIPPED_ARGS := --synthetic --synthetic-users 200 --synthetic-days 60 --max-train-samples 800 \
	--max-val-samples 100 --max-test-samples 200 --balanced-per-class 10 --seed 42 --name behavior_demo
shipped-data: $(STAMP)
	$(VENV)/bin/behaviorlm prepare $(SHIPPED_ARGS) --dataset-dir dataset_info --overwrite
