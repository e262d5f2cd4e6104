"""setuptools entry point of the PEP 517 build (``pip install .``, ``pip wheel .``): the metadata is in
pyproject.toml; the C parts and the command that compiles them are build_ffi.py's (the same build ``make build``
runs in place). setuptools' own intermediate files go to a folder of the system's temporary directory, not to the
project's ``build/`` (which holds the Makefile's outputs)."""

import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from setuptools import setup

import build_ffi

_scratch = os.path.join(
    tempfile.gettempdir(), "snow_rt_py-build-" + hashlib.sha256(str(build_ffi.ROOT).encode()).hexdigest()[:12]
)
os.makedirs(_scratch, exist_ok=True)

setup(
    **build_ffi.setup_kwargs(),
    options={"build": {"build_base": _scratch}, "egg_info": {"egg_base": _scratch}},
)
