"""A hypothesis state machine drives one real connection (raw socket on 127.0.0.1, a real server) through random
interleavings of what the peer sends (messages, pings, garbage, frames cut in two, its Close, a disconnect), what
the program does (send, close with a code, abort, from the test's thread) and timeouts (the close deadline, the
heartbeat). Whatever happened, at the end:

* on_close ran exactly once for the connection, with a code a close can report (one that may be sent, or 1005 /
  1006);
* the server sent at most one Close, with a code that may be sent (never 1005 or 1006), and no data frame after
  it (RFC 6455 §5.5.1; a Pong may follow it: §5.5.2 answers Pings until the peer's Close is received);
* every server frame is unmasked and well formed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import snow_rt_py
from snow_rt_py.protocol.close import is_sendable_code
from snow_rt_py.protocol.frames import encode_frame
from snow_rt_py.runtime.errors import ConnectionClosedError, QueueFullError
from snow_rt_py.testing import RawClient, parse_frame
from tests.support import Recorder

pytestmark = pytest.mark.timeout(120)

CLOSE_TIMEOUT = 0.3
PING_INTERVAL = 0.25
_state: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def server() -> Iterator[None]:
    recorder = Recorder()
    runtime = snow_rt_py.Runtime()
    running = runtime.start(
        recorder,
        snow_rt_py.ServerOptions(
            port=0, close_timeout=CLOSE_TIMEOUT, ping_interval=PING_INTERVAL, pong_timeout=0.2, max_message_size=4096
        ),
    )
    _state.update(recorder=recorder, port=running.port)
    yield
    runtime.close()
    _state.clear()


class Reader(threading.Thread):
    """Collects everything the server sends until EOF (or a reset)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.data = bytearray()
        self.eof = threading.Event()

    def run(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.data += chunk
        except OSError:
            pass
        self.eof.set()


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse the server's frames (after the 101): ``(opcode, payload)``; asserts they are well formed."""
    frames = []
    pos = 0
    while pos < len(data):
        parsed = parse_frame(data, pos)
        assert parsed is not None, "a truncated frame"
        frame, pos = parsed
        assert not frame.masked, "a masked server frame"
        assert not frame.rsv, "RSV bits set"
        frames.append((frame.opcode, frame.payload))
    return frames


class ConnectionMachine(RuleBasedStateMachine):
    @initialize()
    def connect(self) -> None:
        self.recorder: Recorder = _state["recorder"]  # type: ignore[assignment]
        before = set(self.recorder.conns)
        self.client = RawClient.connect(_state["port"])  # type: ignore[arg-type]
        self.recorder.wait_until(lambda: set(self.recorder.conns) - before != set())
        (self.conn_id,) = set(self.recorder.conns) - before
        self.conn = self.recorder.conns[self.conn_id]
        assert not self.client.buf, "nothing may follow the 101 yet"
        self.reader = Reader(self.client.sock)
        self.reader.start()
        self.peer_gone = False

    def _send(self, data: bytes) -> None:
        if self.peer_gone:
            return
        with contextlib.suppress(OSError):  # the server may have closed already
            self.client.sock.sendall(data)

    @rule(text=st.text(max_size=40))
    def peer_sends_text(self, text: str) -> None:
        self._send(encode_frame(1, text.encode("utf-8", "surrogatepass"), mask=os.urandom(4)))

    @rule(data=st.binary(max_size=300), cut=st.integers(min_value=1, max_value=10))
    def peer_sends_a_frame_in_two_pieces(self, data: bytes, cut: int) -> None:
        frame = encode_frame(2, data, mask=os.urandom(4))
        self._send(frame[:cut])
        time.sleep(0.002)
        self._send(frame[cut:])

    @rule(payload=st.binary(max_size=10))
    def peer_pings(self, payload: bytes) -> None:
        self._send(encode_frame(9, payload, mask=os.urandom(4)))

    @rule(garbage=st.binary(min_size=1, max_size=20))
    def peer_sends_garbage(self, garbage: bytes) -> None:
        self._send(garbage)

    @rule(code=st.sampled_from([1000, 1001, 1003, 1008, 3000, 4999, 1005, 999, 1006]))
    def peer_closes(self, code: int) -> None:
        payload = b"" if code == 1005 else struct.pack("!H", code)
        self._send(encode_frame(8, payload, mask=os.urandom(4)))

    @rule()
    def peer_disconnects(self) -> None:
        if not self.peer_gone:
            self.peer_gone = True
            with contextlib.suppress(OSError):
                self.client.sock.shutdown(socket.SHUT_WR)

    @rule(text=st.text(max_size=20))
    def program_sends(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosedError, QueueFullError, snow_rt_py.InvalidArgumentError):
            self.conn.send(text)

    @rule(code=st.sampled_from([1000, 1001, 1008, 1011, 4000]), reason=st.text(max_size=10))
    def program_closes(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosedError, snow_rt_py.InvalidArgumentError):
            self.conn.close(code, reason)

    @rule()
    def program_aborts(self) -> None:
        self.conn.abort()

    @rule(delay=st.sampled_from([0.0, 0.05, CLOSE_TIMEOUT + 0.1, PING_INTERVAL + 0.25]))
    def time_passes(self, delay: float) -> None:
        time.sleep(delay)  # the close deadline and the heartbeat (nobody answers its pings) may expire

    @invariant()
    def at_most_one_on_close(self) -> None:
        if hasattr(self, "conn_id"):
            assert len([c for c in self.recorder.of("close") if c[1] == self.conn_id]) <= 1

    def teardown(self) -> None:
        if not hasattr(self, "conn_id"):
            return
        # End it if nothing did: the peer goes away; the server sees EOF (or its deadlines expire).
        self.peer_disconnects()
        self.recorder.wait_until(lambda: any(c[1] == self.conn_id for c in self.recorder.of("close")), timeout=10)
        assert self.reader.eof.wait(10), "the server never closed TCP"
        time.sleep(0.01)  # a second on_close, if there were one, would be recorded by now
        mine = [c for c in self.recorder.of("close") if c[1] == self.conn_id]
        assert len(mine) == 1, f"on_close ran {len(mine)} times: {mine}"
        code = mine[0][2]
        assert is_sendable_code(code) or code in (1005, 1006), f"on_close reported {code}"
        frames = server_frames(bytes(self.reader.data))
        closes = [i for i, (opcode, _) in enumerate(frames) if opcode == 8]
        assert len(closes) <= 1, f"{len(closes)} Close frames"
        if closes:
            after = [opcode for opcode, _ in frames[closes[0] + 1 :]]
            # RFC 6455 §5.5.1: no data frame after our Close; a Pong may follow it (§5.5.2: a Ping is answered
            # until the peer's Close has been *received*).
            assert set(after) <= {10}, f"a frame other than a Pong after our Close: {frames[closes[0] + 1 :]}"
            payload = frames[closes[0]][1]
            if payload:
                sent = struct.unpack("!H", payload[:2])[0]
                assert is_sendable_code(sent) and sent not in (1005, 1006), f"we sent Close {sent}"
        self.client.close()


ConnectionMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=10, deadline=None, suppress_health_check=list(HealthCheck)
)
test_connection_invariants = ConnectionMachine.TestCase
