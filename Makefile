# Impetus developer entry points. `make demo` and `make test` are all a newcomer needs.

VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  ?= $(shell command -v python3.11 || command -v python3)
STAMP   := $(VENV)/.installed
# uv itself is pinned in the lock (the dev extra); the bootstrap installs that version.
UV_VERSION := $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)
# Never fetch an interpreter: the venv uses $(PYTHON), as CI's fresh clone does.
export UV_PYTHON_DOWNLOADS := never

NPM_STAMP := node_modules/.installed
# The CDK CLI offline: no telemetry, no notices, no Node 20 end-of-life banner.
CDK_ENV := CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

.PHONY: venv demo test test-latest lock lint lint-template synth format bench clean distclean browser screenshot

venv: $(STAMP)

# Installs exactly what uv.lock pins (all extras: the local stack, the CDK app, the
# tools); --frozen refuses to touch the lock, so what was tested is what is installed.
# Re-runs only when the project's metadata or the lock change.
$(STAMP): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv && $(BIN)/uv --version | grep -qx 'uv $(UV_VERSION)' || \
	  $(BIN)/python -m pip install -q --disable-pip-version-check 'uv==$(UV_VERSION)'
	$(BIN)/uv sync --frozen --all-extras --python $(BIN)/python -q
	touch $@

# Refreshes the lock on purpose: the newest versions pyproject.toml allows.
lock: venv
	$(BIN)/uv lock --upgrade

# The suite against the newest versions pyproject.toml allows (not the lock's), in a
# throw-away venv: shows what a `make lock` would bring before anyone commits to it.
test-latest: venv
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  $(PYTHON) -m venv "$$tmp/venv"; \
	  VIRTUAL_ENV="$$tmp/venv" $(BIN)/uv pip install -q --upgrade --resolution highest -e '.[dev]'; \
	  "$$tmp/venv/bin/python" -c 'import moto, boto3, cloudpickle; print("latest: moto", moto.__version__, "boto3", boto3.__version__, "cloudpickle", cloudpickle.__version__)'; \
	  IMPETUS_UNLOCKED=1 PATH="$$tmp/venv/bin:$$PATH" "$$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Runs the original helloworld against a fresh local stack (state in ~/.impetus) that
# starts with 0 nodes: DFS brings nodes up for the jobs and takes them back to zero
# (idle threshold shortened to 10 s for the local stack; half a boot, 30 s, on AWS), which
# `impetus dfs watch` prints. The stack is stopped even when the example fails; the
# example's exit code wins.
demo: venv
	-$(BIN)/impetus local down
	$(BIN)/impetus local up && \
	  { $(BIN)/impetus dfs watch --until-idle --timeout 100 & watch=$$!; \
	    $(BIN)/python examples/helloworld.py; rc=$$?; wait $$watch || rc=$${rc:-1}; }; \
	  $(BIN)/impetus local down; exit $$rc

# pytest-xdist: most e2e tests wait on a local stack (its boot, DFS's ticks, leases), so
# the suite runs on more workers than cores; a module's tests stay on one worker.
TEST_WORKERS ?= 3
test: venv lint synth lint-template browser
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# Headless Chromium for the dashboard's e2e test (tests/e2e/test_dashboard_e2e.py),
# from Debian's packages when it is missing.
CHROMIUM := /usr/bin/chromium
browser:
	test -x $(CHROMIUM) || { apt-get update -q && apt-get install -y -q chromium chromium-driver; }

# docs/dashboard.png: a run on a fresh local stack (its own IMPETUS_HOME), shot in
# headless Chromium (docs/dashboard_shot.py). About a minute.
screenshot: venv browser
	$(BIN)/python -m docs.dashboard_shot docs/dashboard.png

# cfn-lint on the synthesized template: 0 errors, 0 warnings; .cfnlintrc.yaml lists the
# rules it ignores, each with its reason.
lint-template: venv
	$(BIN)/cfn-lint cdk.out/*.template.json

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
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache cdk.out .cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
