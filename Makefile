# Impetus developer entry points. `make demo` and `make test` are all a newcomer needs.

VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  ?= $(shell command -v python3.11 || command -v python3)
STAMP   := $(VENV)/.installed

.PHONY: venv demo test lint format clean distclean

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

test: venv lint
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache cdk.out
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
