# One-command set-up: every target depends on `setup`, which builds .venv when it is missing or
# older than pyproject.toml, and does nothing otherwise.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/quick.yaml

.PHONY: setup run test test-slow lint bench clean tb eval tune dashboard

setup: $(STAMP)

# Quiet: one line says what happens; the installers print only errors (and pip its warnings).
PIP_QUIET := --quiet --disable-pip-version-check --no-input --progress-bar off

# uv installs the pinned set from its package cache in a fraction of pip's time. UV: the uv
# command; empty, uv from PATH or else installed into the venv by pip. uv reads no pip
# configuration, so .ci/uv_flags.py turns `pip config list` (find-links, extra indexes,
# constraints) into uv's flags. If uv cannot be had or fails, pip installs instead (as does
# `make setup UV=false`). Installing uv, pip prints errors only (-q twice); uv upgrades pip as
# the pip path does, so either way the venv holds the same set, and compiles the bytecode as pip
# does (without it, where PYTHONDONTWRITEBYTECODE is set, every process compiles torch again:
# `make test` took 5:34 instead of 3:42).
UV ?=

$(STAMP): pyproject.toml
	@echo "setup: installing the pinned dependencies into $(VENV) (under a minute with a warm uv cache)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if uv='$(UV)' && { [ -n "$$uv" ] || uv=$$(command -v uv) || \
	        { $(PY) -m pip install $(PIP_QUIET) --quiet uv >&2 && uv=$(VENV)/bin/uv; }; } && \
	    flags=$$($(PY) .ci/uv_flags.py) && \
	    $$uv pip install --quiet --compile-bytecode --python $(PY) $$flags --upgrade-package pip pip -e '.[dev,alpaca]'; \
	then :; else \
	    echo "setup: uv could not be had or failed; installing with pip instead"; \
	    $(PY) -m pip install $(PIP_QUIET) --upgrade pip && \
	    $(PY) -m pip install $(PIP_QUIET) -e '.[dev,alpaca]'; \
	fi
	@touch $(STAMP)
	@echo "setup: done"

# The main job on the embedded data: data summary, walk-forward forecasts, PPO training, the
# forecasts' own evaluation, and PPO against every baseline on the held-out segment of $(CONFIG).
# Run twice, the second run reuses the forecast cache and the finished model (and says so); an
# interrupted run continues from its latest checkpoint.
RUN_DIR ?= runs/$(notdir $(basename $(CONFIG)))

run: setup
	$(PY) -m data --out $(RUN_DIR)/data
	$(PY) train.py --config $(CONFIG) --run-dir $(RUN_DIR) $(if $(wildcard $(RUN_DIR)/checkpoints $(RUN_DIR)/seed_*/checkpoints),--resume,)
	$(PY) -m forecasters --config $(CONFIG) --out $(RUN_DIR)/forecast_eval --segment test --no-progress
	$(PY) evaluate.py --run $(RUN_DIR)

# TensorBoard over every run's logs (RUNS=runs by default).
RUNS ?= runs
tb: setup
	$(VENV)/bin/tensorboard --logdir $(RUNS)

# The read-only dashboard over every run folder (and an executor journal): make dashboard
# [RUNS=runs] [PORT=8501] [JOURNAL=path/to/journal.sqlite]; open http://127.0.0.1:$(PORT)
PORT ?= 8501
dashboard: setup
	$(PY) -m dashboard --runs $(RUNS) --port $(PORT) $(if $(JOURNAL),--journal $(JOURNAL),)

# Evaluate one run folder: make eval RUN=runs/quick [EVAL_ARGS="--set options.costs.commission_per_contract_usd=1"]
eval: setup
	@test -n "$(RUN)" || { echo "usage: make eval RUN=runs/NAME [EVAL_ARGS=...]" >&2; exit 2; }
	$(PY) evaluate.py --run $(RUN) $(EVAL_ARGS)

# PPO hyper-parameter search on $(CONFIG): make tune [TRIALS=20] [TUNE_ARGS="--storage URL"]
TRIALS ?= 20
tune: setup
	$(PY) -m agents.tune --config $(CONFIG) --trials $(TRIALS) $(TUNE_ARGS)

# The fast suite on two pytest-xdist workers, a test file per worker at a time (its module
# fixtures are built once), the files sharing the trained tiny run on one worker (it is trained
# once: tests/conftest.py groups them); it ends with the ten slowest tests and the line
# "N passed ... in S s", the suite's duration. PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
PYTEST_XDIST = -n $(PYTEST_WORKERS) --dist loadfile
test: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_XDIST) --durations=10

test-slow: setup
	$(PY) -m pytest -q -m slow $(PYTEST_XDIST) --durations=10

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/pricing.py
	$(PY) bench/env.py
	$(PY) bench/train_throughput.py
	$(PY) bench/forecasters.py
	$(PY) bench/chains.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
