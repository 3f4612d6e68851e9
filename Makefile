# The two commands a fresh machine needs: `make demo` and `make test`. Everything else is a step of them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck unit package-test bench package clean summary-screenshot soak

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

# The package is checked for Python 3.9 (pyproject.toml); the build scripts run on the developer's Python
# and import the `packaging` library, whose sources need 3.10 to analyse.
typecheck: setup
	$(BIN)/mypy
	$(BIN)/mypy --python-version 3.10 packaging/*.py

PACKAGE_TESTS := tests/test_package.py tests/test_package_select.py tests/test_package_platforms.py

# Unit tests need no .vsix; the package tests run the task from the extracted .vsix, so they build it first.
unit: setup
	$(BIN)/pytest -n 2 $(foreach t,$(PACKAGE_TESTS),--ignore=$(t)) $(PYTEST_ARGS)

package-test: setup package
	$(BIN)/pytest -n 2 $(PACKAGE_TESTS) $(PYTEST_ARGS)

test: lint typecheck unit package-test

# The generated-input, fault and load tests at full size (`make test` runs them bounded): thousands of
# generated values per property, every fault at every service, 50 parallel runs. Prints the figures.
soak: setup
	OIDC_CREDENTIALS_SOAK=1 $(BIN)/pytest -n 0 -s -m soak $(PYTEST_ARGS)

bench: setup package
	$(PY) -m bench

# dist/*.vsix (tfx, warnings are errors) + sdist + wheel (python -m build, twine check); prints the size.
# Runtime dependencies are resolved and downloaded once per dependency set (cached under build/deps).
# `make package PUBLISHER=<your publisher id> [EXTENSION_ID=<id>]` builds it for your own publisher.
package: setup
	$(PY) packaging/make_package.py

# The run summary as a browser shows it: installs headless Chromium (Debian package) when it is missing,
# checks the rendering, and refreshes the pictures the README shows (docs/summary-*.png).
summary-screenshot: setup
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(BIN)/pytest -n 0 -p no:randomly tests/test_summary_screenshot.py $(PYTEST_ARGS)
	$(PY) -m tests.summary_screenshot docs

clean:
	rm -rf $(VENV) node_modules build dist .pytest_cache .mypy_cache .ruff_cache
