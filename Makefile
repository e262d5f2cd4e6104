# The README's commands. Every target sets up what it needs and is idempotent (quick when nothing changed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8765

.PHONY: build run cluster test lint typecheck unit bench clean fuzz

$(STAMP): pyproject.toml snow_rt_py/__init__.py  # the package's version is read from __init__.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,cluster]'
	touch $(STAMP)

# C accelerator (masking) compiled with cffi; see build_ffi.py.
SPEEDUPS_STAMP := build/.speedups
$(SPEEDUPS_STAMP): $(STAMP) build_ffi.py snow_rt_py/protocol/_codec.c
	$(PY) build_ffi.py speedups
	mkdir -p build && touch $(SPEEDUPS_STAMP)

# The C parts of the protocol, the scheduler and the connection (base classes of ServerProtocol, Actor and
# Connection; build_ffi.py's EXTENSIONS).
HOTPATH_STAMP := build/.hotpath
$(HOTPATH_STAMP): $(STAMP) build_ffi.py snow_rt_py/protocol/_codec.c $(wildcard snow_rt_py/protocol/_protocol_core.[ch]) \
		$(wildcard snow_rt_py/runtime/_*_core.[ch] snow_rt_py/runtime/_connection_*.[ch])
	$(PY) build_ffi.py hotpath
	mkdir -p build && touch $(HOTPATH_STAMP)

# The C ABI: build/libsnow_ws.so (cffi embedding mode, include/snow_ws.h), then the C examples linked to it.
ABI_LIB      := build/libsnow_ws.so
C_EXAMPLES   := build/echo_server build/chat_server
C_LINK_FLAGS := -Lbuild -lsnow_ws -Wl,-rpath,$(CURDIR)/build
$(ABI_LIB): $(STAMP) $(SPEEDUPS_STAMP) build_ffi.py include/snow_ws.h snow_rt_py/abi/snow_ws_api.c \
		snow_rt_py/abi/snow_ws_replies.c snow_rt_py/abi/snow_ws_wait.c snow_rt_py/protocol/_codec.c
	$(PY) build_ffi.py embedding
build/%: examples/%.c include/snow_ws.h $(ABI_LIB)
	$(CC) -O2 -Wall -Wextra -Werror -Iinclude -o $@ $< $(C_LINK_FLAGS)

build: $(STAMP) $(SPEEDUPS_STAMP) $(HOTPATH_STAMP) $(ABI_LIB) $(C_EXAMPLES)

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

# Then the pure-Python configuration (issue 21): the same tests without the compiled parts, C programs included.
unit: build
	bash tests/interop/setup.sh
	bash tests/cluster/setup.sh
	$(PY) -m pytest -q
	SNOW_RT_PY_NO_SPEEDUPS=1 $(PY) -m pytest -q tests/protocol tests/runtime tests/conformance tests/abi tests/c tests/cluster

test: lint typecheck unit

# Every peer in one run (issue 6): echo, latency, 1 MiB, idle memory, broadcast; summary in build/bench_all.md.
# Node's ws (a peer) comes from tests/interop/node_modules. Then the parser (issue 2), the C boundary (issue 5) and
# C callbacks on 1 and 2 workers (bench_workers.py), memory under hostile clients (bench_abuse.py, issue 11), and
# permessage-deflate (bench_deflate.py, issue 13: idle memory, broadcast, echo, bytes on the wire, loop stall).
bench: build
	$(PY) -m pip install -q -e '.[dev,bench]'
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

# Coverage-guided fuzzing (atheris) of the handshake and frame parsers, FUZZ_SECONDS each (default 30), from the
# committed seed corpus in fuzz/corpus/; a crash input is saved in fuzz/regressions/ and fails the target
# (tests/protocol/test_fuzz.py replays both directories on every `make test`).
FUZZ_SECONDS ?= 30
fuzz: build
	$(PY) -m pip install -q -e '.[dev,fuzz]'
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

# Autobahn|Testsuite (cases 1-13 by default; CASES='6.*,7.1.*' for some; MODES=all: shared and dedicated
# compression) against the Python and the C echo servers; sets the suite up in .autobahn/ (Python 2.7: PYTHON27=...,
# else pyenv's 2.7.18); report and summary.md in artifacts/autobahn/.
.PHONY: autobahn
autobahn: build
	$(PY) tools/autobahn/run.py $(if $(CASES),--cases '$(CASES)') $(if $(MODES),--modes '$(MODES)')

clean:
	rm -rf build $(VENV) snow_rt_py/_speedups*.so snow_rt_py/*/_*_core*.so tests/interop/node_modules artifacts .autobahn
