# Quick start: `make run` opens the app on the bundled samples; `make test` runs the whole suite headless.
# Both create .venv and install the project into it when missing (or when pyproject.toml changed).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint system-deps clean bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	@touch $(STAMP)

# Libraries Qt needs even offscreen (fonts, EGL/GL, xkbcommon); installed only when missing and root.
system-deps:
	@bash .ci/system-deps.sh

run: $(STAMP) system-deps
	$(PY) main.py --samples

test: $(STAMP) system-deps
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) bench/proposals.py
	$(PY) bench/detectors.py

clean:
	rm -rf $(VENV) build *.egg-info
