# raas: two commands do all the set-up. Both build .venv from nothing when it is missing or stale.
#   make run    the whole product (raasd up): service, robot, a demo session, until Ctrl-C
#   make test   ruff (format + lint), mypy --strict on our packages, then the whole pytest suite
#   make bench  the benchmarks under bench/, each beside its peer, JSON reports in bench/results/
#   make targets  every performance target measured, one table (bench/results/targets.json)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_ARGS ?=
BENCH_ARGS ?=
TARGETS_ARGS ?=

.PHONY: run test lint typecheck pytest bench targets clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e './clients/python[gym,report]' -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/raasd up -- --clock realtime $(RUN_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

targets: $(STAMP)
	$(PY) -m bench targets -- $(TARGETS_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache bench/results
