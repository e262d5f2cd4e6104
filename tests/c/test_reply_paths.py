"""A C program's on_message called by the connection's C part gives its client the same bytes as through Python.

tests/c/replies.c runs three times at once: as built (the connection's C part calls the program's on_message
itself, ``Connection._native``, with the library's reply fast path armed), with
``SNOW_RT_PY_ABI_NO_FAST_REPLY=1`` (still called from C, but every send goes through Python at once), and with
``SNOW_RT_PY_NO_SPEEDUPS=1`` (no C part: ``CHandler.on_text_bytes`` calls it through Python). For any sequence of
commands -- bursts over the outbound queue's budget (whose last send fails and closes the connection as a slow
consumer), invalid UTF-8 sends, binary echoes, a close in the middle, a room broadcast between two sends -- a raw
client of each gets exactly the same bytes, and each program prints the same transcript (return codes, errors,
on_close). Under ``SNOW_RT_PY_NO_SPEEDUPS=1`` all three are the pure-Python configuration, compared with itself.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snow_rt_py.protocol.frames import encode_frame
from snow_rt_py.testing import parse_frame
from tests.c.harness import Program, clean_env

CONFIGS = {
    "C calls on_message, fast replies": {},
    "C calls on_message, replies through Python": {"SNOW_RT_PY_ABI_NO_FAST_REPLY": "1"},
    "Python calls on_message": {"SNOW_RT_PY_NO_SPEEDUPS": "1"},
}
MARK = b"C#sync#"  # a binary message replies.c copies back: every reply to the commands before it came first


@pytest.fixture(scope="module")
def programs(
    compiled: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[int, Program]]]:
    """The three programs, running until the module is done: each one's port and output by configuration."""
    exe = compiled("replies")
    started = {
        name: Program(exe, ["1000000"], tmp_path_factory.mktemp("replies"), clean_env(**env))
        for name, env in CONFIGS.items()
    }
    try:
        yield {name: (program.port(), program) for name, program in started.items()}
    finally:
        for program in started.values():
            program.kill()


class Client:
    """A raw WebSocket client that keeps every byte the server sent after the 101."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = bytearray()
        self.sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.buf = bytearray(rest)
        self.raw = bytearray()  # what came after the 101, byte for byte

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def send(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(encode_frame(opcode, payload, mask=b"\x01\x02\x03\x04"))

    def until_mark_or_close(self) -> bool:
        """Read frames up to our mark's copy (True) or the server's Close (False, answered)."""
        while True:
            while (parsed := parse_frame(self.buf)) is None:
                self._fill()
            frame, end = parsed
            self.raw += self.buf[:end]
            del self.buf[:end]
            if frame.opcode == 2 and frame.payload == MARK:
                return True
            if frame.opcode == 8:
                self.send(8, frame.payload[:2])
                return False

    def close(self) -> None:
        self.send(8, (1000).to_bytes(2, "big") + b"bye")
        self.until_mark_or_close()
        self.sock.close()


commands = st.one_of(
    st.builds(
        lambda n, size: (1, f"burst {n} {size}".encode()),
        st.integers(1, 6),
        st.sampled_from([1, 125, 126, 5000, 65_535, 65_536, 300_000, 1_100_000]),
    ),
    st.just((1, b"utf8")),
    st.builds(lambda n: (1, f"utf8-random {n}".encode()), st.integers(1, 60)),
    st.just((1, b"binary")),
    st.just((1, b"order")),
    st.just((1, b"relay")),
    st.just((1, b"close-after")),
    st.just((1, b"not a command")),
    st.builds(lambda data: (2, b"E" + data), st.binary(max_size=300) | st.builds(bytes, st.just(70_000))),
    st.builds(lambda data: (2, b"Cx" + data), st.binary(max_size=200)),
)


def session(port: int, program: Program, script: list[tuple[int, bytes]]) -> tuple[bytes, list[str]]:
    """``script`` on a new connection, then a Close: the bytes the client got and the lines the program printed."""
    client = Client(port)
    for opcode, payload in script:
        client.send(opcode, payload)
        client.send(2, MARK)
        if not client.until_mark_or_close():
            break
    else:
        client.close()
    lines = []
    while not (line := program.line(timeout=20)).startswith("on_close "):
        lines.append(line)
    return bytes(client.raw), [*lines, line]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(commands, min_size=1, max_size=6))
def test_each_path_gives_the_client_the_same_bytes_and_the_program_the_same_answers(
    programs: dict[str, tuple[int, Program]], script: list[tuple[int, bytes]]
) -> None:
    seen = {name: session(port, program, script) for name, (port, program) in programs.items()}
    (first, reference), *others = seen.items()
    for name, result in others:
        assert result[1] == reference[1], f"transcripts differ: {first!r} vs {name!r}"
        assert result[0] == reference[0], f"bytes on the wire differ: {first!r} vs {name!r}"
