"""The documented options, commands and make variables are the real ones, and every real one is documented.

README.md's option table against ``snow-ws serve --help``; examples/README.md's tables against the option parsers
and the ``--help`` usage lines of examples/echo_server.c and chat_server.c, and its chat commands against the ones
snow_rt_py/apps.py and chat_server.c answer; the ``make run`` / ``make cluster`` variables against the Makefile.
An option added without its line in the docs (or a line left for an option that went) fails here.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from snow_rt_py.apps import ChatApp
from tests.c.harness import REPO, compile_program, library_missing

pytestmark = pytest.mark.timeout(120)

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"(?<![\w/])/[a-z]+(?![\w/])")


def section(path: Path, heading: str) -> str:
    """The text of ``path`` from the line ``heading`` to the next heading of the same or a higher level (a ``#``
    line inside a code block is not a heading)."""
    level = len(heading.split(" ")[0])
    lines = path.read_text().split("\n")
    start = lines.index(heading)
    fenced = False
    for stop in range(start + 1, len(lines)):
        line = lines[stop]
        fenced ^= line.startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
    else:
        stop = len(lines)
    return "\n".join(lines[start:stop])


def first_cells(text: str, header: str) -> str:
    """The first cells of the rows of the Markdown table of ``text`` whose header row starts with ``header``."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    cells = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells.append(re.split(r"(?<!\\)\|", line)[1])
    return "\n".join(cells)


def documented(text: str, header: str = "option") -> set[str]:
    return set(OPTION.findall(first_cells(text, header)))


def help_options(output: str) -> set[str]:
    """The options of an argparse ``--help`` (the lines of its options section), without -h/--help."""
    found = set()
    for line in output.split("\n"):
        match = re.match(r"  (?:-\w, )?(--[a-z][a-z0-9-]*)", line)
        if match:
            found.add(match.group(1))
    return found - {"--help"}


@pytest.mark.parametrize(
    ("command", "heading", "sample"),
    [
        ("serve", "## Command line", {"--app", "--port", "--compression", "--processes"}),
        ("client", "## Client", {"--echo", "--insecure", "--proxy", "--compression"}),
    ],
)
def test_readme_option_tables_are_every_option_of_the_command(command: str, heading: str, sample: set[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "snow_rt_py", command, "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    real = help_options(out.stdout)
    assert sample <= real  # the help was read
    docs = documented(section(REPO / "README.md", heading))
    assert docs - real == set(), f"documented in README.md, but snow-ws {command} has no such option"
    assert real - docs == set(), f"options of snow-ws {command} missing from README.md's table under {heading!r}"


def parser_options(source: str) -> set[str]:
    """The options the C example's main() compares its arguments with."""
    main = source[source.index("int main(") :]
    return set(re.findall(r'strcmp\(arg, "(--[a-z][a-z0-9-]*)"\)', main))


@pytest.mark.parametrize("name", ["echo_server", "chat_server"])
def test_examples_readme_lists_every_option_of_the_c_example(name: str, tmp_path: Path) -> None:
    reason = library_missing()
    if reason is not None:
        pytest.fail(reason)
    real = parser_options((REPO / "examples" / f"{name}.c").read_text())
    assert {"--port", "--host", "--help"} <= real  # the parser was read
    usage = subprocess.run([compile_program(name, tmp_path), "--help"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and usage.stdout.startswith(f"usage: {name} "), usage
    assert set(OPTION.findall(usage.stdout)) == real, "the usage line is not the parser's options"
    docs = documented(section(REPO / "examples" / "README.md", f"### {name}"))
    assert docs - real == set(), f"documented in examples/README.md, but {name} has no such option"
    assert real - docs == set(), f"options of {name} missing from examples/README.md"


def test_echo_server_has_the_compression_option_documented() -> None:
    """The one the issue found missing: the table really is read (not an empty set equal to another)."""
    assert "--compression" in documented(section(REPO / "examples" / "README.md", "### echo_server"))


def test_examples_readme_lists_every_chat_command_of_python_and_c() -> None:
    python = set(COMMAND.findall(inspect.getsource(ChatApp.on_message)))
    source = (REPO / "examples" / "chat_server.c").read_text()
    body = source[source.index("static void *chat_on_message(") :]
    c = set(re.findall(r'slice_is\(command, "(/[a-z]+)"\)', body[: body.index("\n}\n")]))
    assert python == c, "the Python and C chat apps answer different commands"
    assert {"/join", "/joinas", "/who", "/id"} <= c
    docs = set(COMMAND.findall(first_cells(section(REPO / "examples" / "README.md", "### chat_server"), "command")))
    assert docs == c


def test_make_run_and_cluster_variables_are_in_the_readme() -> None:
    makefile = (REPO / "Makefile").read_text()
    settable = set(re.findall(r"^(\w+)\s*\?=", makefile, re.MULTILINE))
    used = set()
    for target in ("run", "cluster"):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
        assert recipe is not None, target
        used |= set(re.findall(r"\$\((\w+)\)", recipe.group(1))) & settable
    assert {"HOST", "PORT", "PORT2"} <= used
    readme = (REPO / "README.md").read_text()
    for name in used:
        assert re.search(rf"make (run|cluster) [^`\n]*\b{name}=", readme), f"make's {name}= is not in README.md"


def test_readme_fuzzing_paragraph_names_every_harness() -> None:
    readme = (REPO / "README.md").read_text()
    paragraph = readme[readme.index("**Fuzzing.**") :].split("\n\n")[0]
    harnesses = sorted(p.name for p in (REPO / "fuzz").glob("fuzz_*.py"))
    assert len(harnesses) >= 3
    for harness in harnesses:
        assert f"fuzz/{harness}" in paragraph
    assert "not implement" not in paragraph
