# The two commands a fresh machine needs: `make demo` and `make test`. Everything else is a step of them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck unit bench package clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(STAMP) $(NODE_STAMP)

demo: setup
	$(PY) -m demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check task tests bench demo packaging

typecheck: setup
	$(BIN)/mypy
	$(BIN)/mypy packaging/*.py

# The package tests run the task from the extracted .vsix, so `make test` builds it first.
unit: setup package
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck unit

bench: setup package
	$(PY) -m bench

# dist/*.vsix (tfx, warnings are errors) + sdist + wheel (python -m build, twine check); prints the size.
# Runtime dependencies are resolved and downloaded once per dependency set (cached under build/deps).
package: setup
	$(PY) packaging/make_package.py

clean:
	rm -rf $(VENV) node_modules build dist .pytest_cache .mypy_cache .ruff_cache
