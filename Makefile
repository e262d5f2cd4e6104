# The README's commands. Every target sets up what it needs and is idempotent (quick when nothing changed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8765

.PHONY: build run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# C accelerator (masking) compiled with cffi; see build_ffi.py.
SPEEDUPS_STAMP := build/.speedups
$(SPEEDUPS_STAMP): $(STAMP) build_ffi.py
	$(PY) build_ffi.py speedups
	mkdir -p build && touch $(SPEEDUPS_STAMP)

build: $(STAMP) $(SPEEDUPS_STAMP)

run: build
	$(PY) -m snow_rt_py serve --app echo --host $(HOST) --port $(PORT)

lint: build
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: build
	$(VENV)/bin/mypy

unit: build
	$(PY) -m pytest -q

test: lint typecheck unit

bench: build
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/bench_parser.py

clean:
	rm -rf build $(VENV) snow_rt_py/_speedups*.so snow_rt_py/_speedups.c snow_rt_py/_speedups.o
