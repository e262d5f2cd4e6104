"""setuptools entry point of the PEP 517 build (``pip install .``, ``pip wheel .``): the metadata is in
pyproject.toml; the C parts and the command that compiles them are build_ffi.py's (the same build ``make build``
runs in place). setuptools' own intermediate files (build/lib, build/bdist.*, the egg-info) go to a temporary folder
of this process, removed when it ends: not to the project's ``build/`` (the Makefile's outputs), and never reused by
a later build."""

import atexit
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from setuptools import setup

import build_ffi

_scratch = tempfile.mkdtemp(prefix="snow_rt_py-build-")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)

setup(
    **build_ffi.setup_kwargs(),
    options={"build": {"build_base": _scratch}, "egg_info": {"egg_base": _scratch}},
)
