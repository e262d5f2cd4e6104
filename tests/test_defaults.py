"""Every option's default is defined once, in ServerOptions' table (runtime/options.py), and documented as it is.

The command line takes its defaults and the defaults its --help shows from the table; the C ABI leaves a 0/NULL
SnowWsOptions field to the table's default. include/snow_ws.h documents each SnowWsOptions field's default in its
comment ("0 = 30000", 'NULL = "index.html"'), README.md each command-line option's in its option table and the
front door's options in theirs: a default changed in the table but not in the documentation fails here.
"""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import MISSING, fields
from typing import Any

import pytest

from snow_rt_py.cli import build_parser, options_from
from snow_rt_py.runtime.options import CField, Cli, ServerOptions, c_fields, cli_options, show_default
from tests.c.harness import REPO

HEADER = REPO / "include" / "snow_ws.h"
README = REPO / "README.md"
NOT_OPTIONS = {"struct_size", "on_binary_fn", "on_binary_env", "on_presence_fn", "on_presence_env"}
"""The SnowWsOptions fields that are not ServerOptions fields (the struct's size, the extra callbacks)."""
ABSENT = {"off", "none", "no check", "allowed", "tuned"}
"""How README.md writes the default of an option whose default is to be absent (None, False, no flag, no items)."""


def _zero_like(value: object) -> bool:
    return value is None or value is False or value == 0 or value == ()


# -- include/snow_ws.h -------------------------------------------------------------------------------------------


def struct_fields() -> list[str]:
    """The fields of ``typedef struct SnowWsOptions``, in order."""
    text = HEADER.read_text()
    body = text[text.index("typedef struct SnowWsOptions {") : text.index("} SnowWsOptions;")]
    return re.findall(r"^\s+[\w ]+?\**\s*\b(\w+);", body, re.MULTILINE)


def field_docs() -> dict[str, str]:
    """Each SnowWsOptions field's entry in the comment above the struct (``name: text``), joined into one line;
    two names listed together (``tls_cert_path,`` then ``tls_key_path:``) share their entry."""
    text = HEADER.read_text()
    comment = text[text.index("/* Options of snow_ws_start.") : text.index("typedef struct SnowWsOptions {")]
    docs: dict[str, str] = {}
    group: list[str] = []  # the names of the entry being read
    pending: list[str] = []  # names listed before it with a comma
    for line in comment.split("\n"):
        entry = re.match(r" \*   ([a-z_]+)([,:])\s*(.*)", line)
        more = re.match(r" \*     +(\S.*)", line)
        if entry and entry.group(2) == ",":
            pending.append(entry.group(1))
            group = []
        elif entry:
            group, pending = [*pending, entry.group(1)], []
            docs.update(dict.fromkeys(group, entry.group(3)))
        elif more and group:
            docs.update({name: f"{docs[name]} {more.group(1)}" for name in group})
        else:
            group = []
    return docs


def zero_statement(spec: Any, c: CField) -> str | None:
    """What the header must say a 0/NULL field means, from the table: ``0 = 30000`` (ms), ``0 = 16 MiB``,
    ``NULL = "index.html"``, ``0 = SNOW_WS_SLOW_CONSUMER_CLOSE``; None when 0/NULL is the default itself."""
    default = spec.default
    if _zero_like(default):
        return None
    if c.kind == "ms":
        return f"0 = {show_default(round(default * 1000))}"
    if c.kind in ("text", "path"):
        return f'NULL = "{default}"'
    if c.kind == "enum":
        return f"0 = SNOW_WS_{c.name.upper()}_{default.upper()}"
    return f"0 = {show_default(default)}"


VALUE_CLAIM = re.compile(r"\b(0|NULL) = (\d+(?:\.\d+)?(?: MiB| KiB)?|\"[^\"]*\"|SNOW_WS_\w+)")
"""A statement that a 0/NULL field stands for a value (a number, a quoted string or a constant)."""


def test_every_snow_ws_options_field_is_in_the_table_and_documented() -> None:
    real = struct_fields()
    assert {"host", "ping_interval_ms", "compression_memory_budget"} <= set(real)  # the struct was read
    table = [c.name for _, c in c_fields()]
    assert len(table) == len(set(table)), "a SnowWsOptions field named twice in the table"
    assert set(real) - NOT_OPTIONS == set(table), "SnowWsOptions fields and the table's CField entries differ"
    docs = field_docs()
    assert set(real) - {"struct_size"} - set(docs) == set(), "SnowWsOptions fields without an entry in the header"


@pytest.mark.parametrize(("spec", "c"), c_fields(), ids=[c.name for _, c in c_fields()])
def test_the_header_documents_each_snow_ws_options_default_as_the_table_has_it(spec: Any, c: CField) -> None:
    doc = field_docs()[c.name]
    expected = zero_statement(spec, c)
    claims = [m.group(0) for m in VALUE_CLAIM.finditer(doc)]
    if expected is None:
        assert claims == [], f"{c.name}: the header gives 0/NULL a value, the default is {spec.default!r}: {doc}"
    else:
        assert claims == [expected], f"{c.name}: the header should say {expected!r} (ServerOptions.{spec.name}): {doc}"


def test_the_header_enum_defaults_are_the_table_defaults() -> None:
    """``SNOW_WS_SLOW_CONSUMER_DEFAULT = 0, /* = SNOW_WS_SLOW_CONSUMER_CLOSE */`` and the like."""
    text = HEADER.read_text()
    enums = [(spec, c) for spec, c in c_fields() if c.kind == "enum"]
    assert {c.name for _, c in enums} == {"slow_consumer", "compression"}
    for spec, c in enums:
        prefix = f"SNOW_WS_{c.name.upper()}"
        comment = re.search(rf"{prefix}_DEFAULT = 0, */\* (.*?) \*/", text)
        assert comment is not None, prefix
        assert re.match(rf"= {prefix}_{spec.default.upper()}\b", comment.group(1)), comment.group(0)


# -- the C ABI ---------------------------------------------------------------------------------------------------


def test_a_zeroed_snow_ws_options_is_every_default_and_each_field_sets_its_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cffi

    from snow_rt_py.abi import exports

    monkeypatch.delenv(exports.COMPRESSION_ENV, raising=False)
    ffi = cffi.FFI()
    ffi.cdef("typedef struct SnowWsOptions {" + _struct_body() + "} SnowWsOptions;")
    layout = exports._option_fields(ffi)
    opts = ffi.new("SnowWsOptions *")
    opts.struct_size = ffi.sizeof("SnowWsOptions")
    assert exports._options(ffi, opts, layout)[0] == ServerOptions()
    keep: list[Any] = []
    for spec, c in c_fields():
        if c.kind == "enum":
            continue  # their constants come from the header's enums (tests/c/test_programs.py)
        value, expected = _c_value(ffi, spec, c, keep)
        setattr(opts, c.name, value)
        assert getattr(exports._options(ffi, opts, layout)[0], spec.name) == expected, c.name
        setattr(opts, c.name, ffi.NULL if c.kind in ("text", "path", "list") else 0)
        assert exports._options(ffi, opts, layout)[0] == ServerOptions(), f"{c.name} = 0 is not the default"


def _struct_body() -> str:
    text = HEADER.read_text()
    return text[
        text.index("typedef struct SnowWsOptions {") + len("typedef struct SnowWsOptions {") : text.index(
            "} SnowWsOptions;"
        )
    ]


def _c_value(ffi: Any, spec: Any, c: CField, keep: list[Any]) -> tuple[Any, Any]:
    """A set value of the C field ``c`` other than the default, and the ServerOptions value it stands for."""
    if c.kind in ("text", "path", "list"):
        text = {"list": "a, b", "host": "::1", "metrics_path": "/m", "cluster_url": "redis://h:1/0"}.get(
            c.kind if c.kind == "list" else c.name, "/tmp"
        )
        keep.append(ffi.new("char[]", text.encode()))
        return keep[-1], (["a", "b"] if c.kind == "list" else text)
    if c.kind == "ms":
        return 1500, 1.5
    if c.kind == "bool":
        return 7, True
    if c.kind == "float":
        return 2.5, 2.5
    return 9, 9


# -- the command line --------------------------------------------------------------------------------------------


def serve_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {action.option_strings[0]: action for action in sub.choices["serve"]._actions if action.option_strings}


def test_the_command_line_s_defaults_are_the_table_s() -> None:
    args = build_parser().parse_args(["serve"])
    got = options_from(args)
    overrides = {spec.name: cli.default for spec, cli in cli_options() if cli.default is not ...}
    assert overrides == {"port": 8765}  # the one default of the command line's own, documented in its --help
    for spec in fields(ServerOptions):
        expected = overrides.get(spec.name, spec.default)
        assert expected is not MISSING
        value = getattr(got, spec.name)
        assert (list(value) if isinstance(value, list) else value) == (
            list(expected) if isinstance(expected, tuple) else expected
        ), spec.name


@pytest.mark.parametrize(("spec", "cli"), cli_options(), ids=[cli.flag for _, cli in cli_options()])
def test_the_help_shows_the_table_s_default(spec: Any, cli: Cli) -> None:
    action = serve_actions()[cli.flag]
    default = spec.default if cli.default is ... else cli.default
    shown = re.findall(r"default: ([^;)]+)\)", action.help or "")
    if "{default}" in cli.help:
        assert shown == [show_default(default)]
    assert all(word == show_default(default) or _zero_like(default) for word in shown), action.help


# -- README.md ---------------------------------------------------------------------------------------------------


def table_rows(heading_row: str) -> list[list[str]]:
    """The cells of the rows of README.md's Markdown table whose header row is ``heading_row``."""
    lines = README.read_text().split("\n")
    start = lines.index(heading_row)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_readme_s_option_table_shows_each_command_line_default() -> None:
    actions = serve_actions()
    checked = set()
    for first, default, *_ in table_rows("| option | default | meaning |"):
        flags = list(dict.fromkeys(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", first)))
        if not default:
            continue  # a second row of an option (--app chat, --app bench)
        parts = [re.sub(r" \(.*\)$", "", part) for part in default.split(", ")]
        if len(parts) == 1:
            parts *= len(flags)
        assert len(parts) == len(flags), f"README.md: {first!r} has {len(flags)} options and defaults {default!r}"
        for flag, part in zip(flags, parts, strict=True):
            action = actions[flag]
            real = action.default
            if action.nargs == 0 or real is None or real == []:
                assert part in ABSENT, f"README.md: {flag}'s default is {part!r}, it has none (one of {ABSENT})"
            else:
                assert part == show_default(real), f"README.md: {flag}'s default is {part!r}, it is {real!r}"
            checked.add(flag)
    assert {"--port", "--ping-interval", "--compression-memory-budget", "--drain-timeout"} <= checked


def test_readme_s_front_door_table_shows_each_server_options_default() -> None:
    defaults = {spec.name: spec.default for spec in fields(ServerOptions)}
    checked = set()
    for first, default, *_ in table_rows("| option | default | rule |"):
        names = re.findall(r"`(\w+)`", first)
        values = re.findall(r"`([^`]+)`", default)
        assert len(names) == len(values), f"README.md: {first!r} and {default!r}"
        for name, value in zip(names, values, strict=True):
            written = ast.literal_eval(value)  # `0` for 0.0 is the same default
            ok = written == defaults[name] and type(written) in (type(defaults[name]), int)
            assert ok, f"README.md: {name}'s default is {value}, it is {defaults[name]!r}"
            checked.add(name)
    assert {"allowed_origins", "retry_after", "drain_timeout"} <= checked
