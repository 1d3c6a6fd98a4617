# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench lint clean venv

venv: $(STAMP)

# (Re)install whenever pyproject.toml changes; the stamp records the last good install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,examples,postgres,dask]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/smpcloud demo
	@echo
	@echo "smpcloud is installed in $(VENV), not on your PATH: run '. $(BIN)/activate'"
	@echo "(then 'smpcloud --help'), or call it as '$(BIN)/smpcloud --help'."

# The PostgreSQL variants of the service's tests run when SMPCLOUD_TEST_POSTGRES_URL names a
# server (.ci/run starts a throwaway one and sets it); without it they are skipped, with the reason.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
