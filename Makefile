# The whole set-up on a fresh machine with Python 3.11+:
#   make lab    create .venv, install the kit, open JupyterLab on notebooks/
#   make test   create or update .venv with the dev extra, run the library tests and every notebook
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: lab test clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cfopt needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.installed

lab: $(VENV)/.installed
	$(BIN)/jupyter lab notebooks/

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests cfopt notebooks solutions --doctest-modules --nbval-lax --nbval-current-env

clean:
	rm -rf $(VENV) .pytest_cache
