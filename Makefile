# The README's commands. Every target sets up what it needs and is idempotent (quick when nothing changed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8765

.PHONY: build run cluster test lint typecheck unit bench clean fuzz

# The venv remembers the tree and the python it was made for: after the tree moved (its scripts and editable install
# name the old path) or with another PYTHON, it is made again (issue 25). The C parts depend on no path at all.
ORIGIN_FILE := $(VENV)/.origin
ORIGIN      := $(CURDIR) $(PYTHON)
ifneq ($(shell cat $(ORIGIN_FILE) 2>/dev/null),$(ORIGIN))
VENV_STALE := FORCE
endif
.PHONY: FORCE

# PYTHON=python3.12 also finds pyenv's 3.12 when pyenv has not put it on PATH (tools/find_python.sh).
PYTHON_EXE = $(shell bash tools/find_python.sh '$(PYTHON)')

# The build requirements (pyproject's [build-system]: setuptools, which cffi needs on Python >= 3.12, and cffi)
# go in first: the editable install then builds with them, without an isolated build environment.
$(STAMP): pyproject.toml setup.py snow_rt_py/__init__.py $(VENV_STALE)  # the version is read from __init__.py
	$(if $(VENV_STALE),rm -rf $(VENV))
	$(PYTHON_EXE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $$($(PY) tools/build_requires.py)
	$(PY) -m pip install -q --no-build-isolation -e '.[dev,cluster]'
	echo '$(ORIGIN)' > $(ORIGIN_FILE)
	touch $(STAMP)

# Every C part (build_ffi.py's table: the speed-ups, the hot path, the C ABI's libraries in snow_rt_py/lib/), in place,
# by the same build as `pip install .`; it skips what is up to date. build/libsnow_ws.so links to the package's.
ABI_LIB      := build/libsnow_ws.so
C_EXAMPLES   := build/echo_server build/chat_server build/echo_client
C_LINK_FLAGS := -Lbuild -lsnow_ws -Wl,-rpath,'$$ORIGIN'
.PHONY: c-parts
c-parts: $(STAMP)
	$(PY) build_ffi.py
	@mkdir -p build && ln -sfn ../snow_rt_py/lib/libsnow_ws.so $(ABI_LIB)
build/%: examples/%.c include/snow_ws.h | c-parts
	$(CC) -O2 -Wall -Wextra -Werror -Iinclude -o $@ $< $(C_LINK_FLAGS)

build: $(STAMP) c-parts $(C_EXAMPLES)

# System-wide use from C (README "Use it from C"): a private venv in PREFIX/lib/snow_ws holding the package, then
# PREFIX/include/snow_ws.h, PREFIX/lib/libsnow_ws.so (a relative link into that venv) and
# PREFIX/lib/pkgconfig/snow_ws.pc. PREFIX defaults to /usr/local.
PREFIX ?= /usr/local
.PHONY: install
install: build
	bash tools/install_prefix.sh '$(PREFIX)' '$(PY)'

# The chat server in C (examples/chat_server.c); the Python CLI serves the same protocol with --app chat.
run: build
	@echo "chat server (C, libsnow_ws). Open http://$(HOST):$(PORT)/ in a browser (the chat page), or connect with"
	@echo "  $(PY) -m websockets ws://$(HOST):$(PORT)/"
	@echo "  then type: /join lobby | /say lobby hello | /all lobby hi | /rooms | /leave lobby | anything (echo)"
	build/chat_server --host $(HOST) --port $(PORT) --static-dir examples --static-index chat.html

# Two chat servers in one cluster (issue 14): redis-server on a free port, the C chat server on $(PORT) and the
# Python one on $(PORT2), both serving the chat page; a browser on each sees the other's messages and presence.
PORT2 ?= 8766
cluster: build
	bash tests/cluster/setup.sh
	$(PY) tools/cluster_demo.py --host $(HOST) --ports $(PORT) $(PORT2)

lint: build
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: build
	$(VENV)/bin/mypy

# The whole suite, then the protocol, runtime, conformance, ABI, C-program and cluster tests again in the pure-Python
# configuration (SNOW_RT_PY_NO_SPEEDUPS=1: no compiled part, also in the C ABI's embedded interpreter).
unit: build
	bash tests/interop/setup.sh
	bash tests/cluster/setup.sh
	bash tests/proxy/setup.sh
	$(PY) -m pytest -q
	SNOW_RT_PY_NO_SPEEDUPS=1 $(PY) -m pytest -q tests/protocol tests/runtime tests/conformance tests/abi tests/c tests/cluster

test: lint typecheck unit

# Every peer in one run (issue 6): echo, latency, 1 MiB, idle memory, broadcast; summary in build/bench_all.md.
# Node's ws (a peer) comes from tests/interop/node_modules. Then the parser (issue 2), the C boundary (issue 5) and
# C callbacks on 1 and 2 workers (bench_workers.py), memory under hostile clients (bench_abuse.py, issue 11), and
# permessage-deflate (bench_deflate.py, issue 13: idle memory, broadcast, echo, bytes on the wire, loop stall).
bench: build
	$(PY) -m pip install -q --no-build-isolation -e '.[dev,bench]'
	bash tests/interop/setup.sh
	$(PY) bench/run_all.py
	$(PY) bench/bench_cost.py
	$(PY) bench/bench_churn.py
	$(PY) bench/bench_parser.py
	$(PY) bench/bench_abi.py
	$(PY) bench/bench_workers.py
	$(PY) bench/bench_abuse.py
	bash tests/cluster/setup.sh
	$(PY) bench/bench_cluster.py
	$(PY) bench/bench_deflate.py
	$(PY) bench/bench_client.py

# Coverage-guided fuzzing (atheris) of the handshake and frame parsers, FUZZ_SECONDS each (default 30), from the
# committed seed corpus in fuzz/corpus/; a crash input is saved in fuzz/regressions/ and fails the target
# (tests/protocol/test_fuzz.py replays both directories on every `make test`).
FUZZ_SECONDS ?= 30
fuzz: build
	$(PY) -m pip install -q --no-build-isolation -e '.[dev,fuzz]'
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

# Autobahn|Testsuite (cases 1-13 by default; CASES='6.*,7.1.*' for some; MODES=all: shared and dedicated
# compression) against the Python and the C echo servers; sets the suite up in .autobahn/ (Python 2.7: PYTHON27=...,
# else pyenv's 2.7.18); report and summary.md in artifacts/autobahn/. Then the suite in client mode against our clients
# (CLIENTS=snow-python,snow-c,websockets by default: `snow-ws client --echo`, build/echo_client, and websockets' client
# for reference), all at once; report in artifacts/autobahn/clients/.
.PHONY: autobahn
autobahn: build
	$(PY) tools/autobahn/run.py $(if $(CASES),--cases '$(CASES)') $(if $(MODES),--modes '$(MODES)')

clean:
	rm -rf build $(VENV) snow_rt_py/_speedups*.so snow_rt_py/*/_*_core*.so snow_rt_py/lib snow_rt_py/include \
		tests/interop/node_modules artifacts .autobahn
