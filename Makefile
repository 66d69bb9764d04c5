# Two commands on a fresh clone: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# dbt-core 1.12 requires a parser that only builds with internet access; dbt never uses it
# unless asked, so uv leaves it out (see ../shared/ENVIRONMENT.md).
UV_FLAGS := --python $(BIN)/python --constraints constraints.txt --excludes .ci/excludes.txt

.PHONY: demo test lint bench docs lock clean

# --compile-bytecode: shells that set PYTHONDONTWRITEBYTECODE (CI here does) would otherwise
# recompile Airflow, Prefect and dbt from source in every test subprocess (about 20% of each import).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.9'
	$(BIN)/uv pip install $(UV_FLAGS) --compile-bytecode -e '.[all,dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/python examples/walkthrough.py

# Two workers (pytest-xdist), one test file per worker at a time, so a file's fixtures stay in one
# process: 7-8 min instead of about 25 serially. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

# ruff, then mypy strict over insync.core and every adapter ([tool.mypy] in pyproject.toml). mypy
# reads the `insync` namespace through .mypy/insync/{core,adapters}, two committed symlinks standing
# in for the package-dir mapping it cannot follow. tests/test_lint.py runs both, so `make test` does too.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Regenerate the CLI reference in README.md from the commands' --help (tests/test_docs.py checks it).
docs: $(STAMP)
	$(BIN)/cog -r README.md

# Re-resolve the pinned environment after changing dependency bounds in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra all --extra dev --excludes .ci/excludes.txt -o constraints.txt

clean:
	rm -rf $(VENV) build dist *.egg-info
