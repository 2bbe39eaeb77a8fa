# Two commands do all the set-up on a machine with only python3 and make:
#   make run    create/refresh .venv, install, start the daemon on config/watcher.toml
#   make test   same install plus test tools, then lint, type-check and the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_VERSION := 26.3
CONFIG ?= config/watcher.toml
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: run test lint check check-unit install install-test bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q pip==$(PIP_VERSION)

# The stamps make a second `make` instant and a changed pin reinstall.
# The C matcher is rebuilt in place: the old module goes first, so that a build that fails
# (no compiler) leaves the Python engine rather than a module of older source.
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py constraints.txt watcher/rules/_native.c
	rm -f watcher/rules/_native.*.so
	$(PIP_INSTALL) -e .
	touch $@

# The test tools alone (the [test] extra's list), not the package again: reinstalling it
# would build the C matcher a second time.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['test']))" > $(VENV)/test-requirements.txt
	$(PIP_INSTALL) -r $(VENV)/test-requirements.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/watcher run --config $(CONFIG)

lint: install-test
	$(BIN)/ruff check watcher tests $(wildcard bench)
	$(BIN)/ruff format --check watcher tests $(wildcard bench)
	$(BIN)/mypy

test: lint check-unit
	$(BIN)/python -m pytest

# systemd-analyze verify and security on systemd/watcher.service (needs systemd-analyze).
check-unit: install
	systemd/check-unit

check: install
	$(BIN)/watcher check --config $(CONFIG)

lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q pip==$(PIP_VERSION) && .venv-lock/bin/pip install -q '.[test]'
	{ head -2 constraints.txt; .venv-lock/bin/pip freeze --exclude-editable | grep -v '^watcher'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
