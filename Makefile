# The whole set-up on a fresh machine with Python 3.11+ (as root or not):
#   make lab                 create .venv, install the kit, open JupyterLab at the repository on the course map
#   make lab LAB_ARGS="--no-browser --port 9999"   the same with options for JupyterLab
#   make doctor              check Python, the venv, the kernel, Redis, Chromium, the grading sandbox
#   make grade FOLDER=submissions/ [GRADE_ARGS="--csv scores.csv --jobs 2"]
#   make report [WORKLOAD=datasets/tiny.jsonl] [REPORT_ARGS="--json"]
#   make test                create or update .venv with the dev extra, run the library tests and every notebook
# Nothing needs activating: every command runs from .venv/bin/.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
PIP      := $(BIN)/python -m pip install --quiet --disable-pip-version-check
LAB_ARGS ?=
FOLDER   ?=
GRADE_ARGS  ?=
WORKLOAD    ?= datasets/contentflow_1h.jsonl
REPORT_ARGS ?=
COURSE_MAP  := course_map.ipynb
# JupyterLab refuses to start as root (the usual user in Docker and cloud containers) without it.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

.PHONY: lab doctor grade report test clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cfopt needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

# The same specification Binder (repo2docker) builds from: binder/requirements.txt, then postBuild.
$(VENV)/.installed: pyproject.toml binder/requirements.txt binder/postBuild binder/overrides.json | $(BIN)/python
	$(PIP) -r binder/requirements.txt
	NB_PYTHON_PREFIX=$(VENV) binder/postBuild
	touch $@

$(VENV)/.installed-dev: pyproject.toml binder/requirements.txt binder/postBuild binder/overrides.json | $(BIN)/python
	$(PIP) -e '.[dev]'
	NB_PYTHON_PREFIX=$(VENV) binder/postBuild
	touch $@ $(VENV)/.installed

# Rooted at the repository, so the notebooks' links to docs/ and to each other work.
lab: $(VENV)/.installed
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/$(COURSE_MAP) $(ALLOW_ROOT) $(LAB_ARGS)

doctor: $(VENV)/.installed
	$(BIN)/cfopt doctor

grade: $(VENV)/.installed
	@test -n "$(FOLDER)" || { echo 'usage: make grade FOLDER=submissions/ [GRADE_ARGS="--csv scores.csv --jobs 2"]' >&2; exit 2; }
	$(BIN)/cfopt grade "$(FOLDER)" $(GRADE_ARGS)

report: $(VENV)/.installed
	$(BIN)/cfopt report --workload "$(WORKLOAD)" $(REPORT_ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests cfopt notebooks solutions --doctest-modules --nbval-lax --nbval-current-env -n auto --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache
