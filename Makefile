# Every target sets itself up: a .venv in the checkout, dependencies from constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Real data for tests and benchmarks (see ../shared/DATA.md); override with TNN_SHARED_DIR=...
export TNN_SHARED_DIR ?= $(abspath ../shared)

.PHONY: demo test lint soak bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(STAMP)   ## the main job, offline: LeNet-5 on `digits`, compressed in five formats
	$(BIN)/tnn demo --out runs/demo --overwrite

test: $(STAMP)   ## the whole quick suite (what CI runs)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check tnn tests benchmarks

soak: $(STAMP)   ## the soak test: 1,000 random specs, 100 random layers
	$(BIN)/python -m pytest -q -m soak tests

clean:
	rm -rf $(VENV) runs .pytest_cache
