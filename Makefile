# Impetus developer entry points. `make demo` and `make test` are all a newcomer needs.

VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  ?= $(shell command -v python3.11 || command -v python3)
STAMP   := $(VENV)/.installed

NPM_STAMP := node_modules/.installed
# The CDK CLI offline: no telemetry, no notices, no Node 20 end-of-life banner.
CDK_ENV := CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

.PHONY: venv demo test lint synth format bench clean distclean

venv: $(STAMP)

# Re-install only when the project's metadata changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Runs the original helloworld against a fresh local stack (state in ~/.impetus) that
# starts with 0 nodes: DFS brings nodes up for the jobs and takes them back to zero
# (idle threshold shortened to 10 s for the local stack; 60 s on AWS), which
# `impetus dfs watch` prints. The stack is stopped even when the example fails; the
# example's exit code wins.
demo: venv
	-$(BIN)/impetus local down
	$(BIN)/impetus local up && \
	  { $(BIN)/impetus dfs watch --until-idle --timeout 100 & watch=$$!; \
	    $(BIN)/python examples/helloworld.py; rc=$$?; wait $$watch || rc=$${rc:-1}; }; \
	  $(BIN)/impetus local down; exit $$rc

test: venv lint synth
	$(BIN)/pytest -q

# The CDK CLI pinned in package-lock.json, installed into node_modules.
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Synthesises the deployment (cdk.out/) the way `cdk deploy` would; --strict fails on
# any construct warning. Bundles are cached in .cache/, so a fresh cdk.out is quick.
synth: venv $(NPM_STAMP)
	rm -rf cdk.out
	$(CDK_ENV) npx --no-install cdk synth --no-notices --strict -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Impetus and the peers (../shared/bench/peers) side by side, plus the AWS cost model.
# Takes ~20 min; BENCH_ARGS="--peers 'celery huey' --reps 1" for a quicker look.
bench: venv
	$(BIN)/python -c "import psutil" 2>/dev/null || $(BIN)/pip install -q psutil
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache cdk.out .cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
