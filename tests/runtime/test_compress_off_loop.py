"""Large messages sent from the event loop's thread with permessage-deflate are compressed on the runtime's own
threads (runtime/compression.py, Connection._send_off_loop): what a client sees must not change -- the frame is
compressed (RSV1), and everything sent after it on the connection (small messages, binary, our Close) arrives
after it, in order, in each mode; an abort meanwhile ends the connection cleanly."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import Connection
from snow_rt_py.runtime.compression import OFFLOAD_FROM
from snow_rt_py.testing import RawClient
from tests.support import Recorder

pytestmark = pytest.mark.timeout(60)

OFFER = "permessage-deflate; client_max_window_bits"
BIG = "[" + ",".join(f'{{"n":{i},"user":"user{i % 97}","text":"hello room {i % 13}"}}' for i in range(15_000)) + "]"
assert len(BIG) > 4 * OFFLOAD_FROM


class Sender(Recorder):
    """Answers a command with a large message and what follows it."""

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self.record("message", conn.id, message)
        if message == "big":
            conn.send(BIG)
            conn.send("small-1")
            conn.send_binary(b"b" * 300)
            conn.send("small-2")
        elif message == "big-twice":
            conn.send(BIG)
            conn.send(BIG[::-1])  # a second large one, behind the first: off the loop too, in its turn
            conn.send("after both")
        elif message == "big-broadcast":  # a frame queued for it by the room, not sent by it
            snow_rt_py.join(conn, "off-loop")
            conn.send(BIG)
            snow_rt_py.broadcast("off-loop", "to the room")
        elif message == "big-close":
            conn.send(BIG)
            conn.close(4000, "bye")
        elif message == "big-abort":
            conn.send(BIG)
            conn.abort()
        elif message == "context":  # dedicated mode: messages that refer to the context before and after
            for text in ("hello hello hello hello hello", BIG, "hello hello hello hello hello", "hello again"):
                conn.send(text)


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def test_large_message_is_compressed_and_what_follows_waits(start_server: Any) -> None:
    handler = Sender()
    server = start_server(handler, workers=0, ping_interval=0)
    client = RawClient(server.port, timeout=10)
    status, headers, _ = client.handshake("/", {"Sec-WebSocket-Extensions": OFFER})
    assert status == 101 and "server_no_context_takeover" in headers["sec-websocket-extensions"]
    client.send_frame(1, b"big")
    frames = [client.recv_frame() for _ in range(4)]
    assert (frames[0].opcode, frames[0].rsv) == (1, 4)  # compressed
    assert inflate(frames[0].payload) == BIG.encode()
    assert len(frames[0].payload) < len(BIG) // 4
    assert [f.rsv for f in frames[1:]] == [0, 4, 0]  # under / over compression_min_size
    decoded = [(f.opcode, inflate(f.payload) if f.rsv else f.payload) for f in frames[1:]]
    assert decoded == [(1, b"small-1"), (2, b"b" * 300), (1, b"small-2")]
    assert server.server.compression_statistics()["offloaded"] >= 1
    client.send_frame(1, b"big-broadcast")
    frames = [client.recv_frame() for _ in range(2)]
    assert inflate(frames[0].payload) == BIG.encode()
    assert (frames[1].rsv, frames[1].payload) == (0, b"to the room")
    client.send_frame(1, b"big-twice")
    frames = [client.recv_frame() for _ in range(3)]
    assert [inflate(f.payload) for f in frames[:2]] == [BIG.encode(), BIG[::-1].encode()]
    assert (frames[2].rsv, frames[2].payload) == (0, b"after both")
    client.close()


def test_close_after_a_large_message_goes_after_it(start_server: Any) -> None:
    handler = Sender()
    server = start_server(handler, workers=0, ping_interval=0)
    with connect(server.url, compression="deflate", max_size=2**23) as ws:
        ws.send("big-close")
        assert ws.recv(timeout=10) == BIG
        with pytest.raises(ConnectionClosed):  # 4000 is not 1000, so websockets raises its error class
            ws.recv(timeout=10)
        assert ws.close_code == 4000 and ws.close_reason == "bye"
    assert handler.wait_close() == (4000, "bye")


def test_dedicated_context_holds_across_an_off_loop_message(start_server: Any) -> None:
    handler = Sender()
    server = start_server(handler, workers=0, ping_interval=0, compression="dedicated")
    with connect(server.url, compression="deflate", max_size=2**23) as ws:
        assert ws.protocol.extensions  # negotiated
        ws.send("context")
        got = [ws.recv(timeout=10) for _ in range(4)]
    assert got == ["hello hello hello hello hello", BIG, "hello hello hello hello hello", "hello again"]


def test_abort_while_compressing_ends_only_that_connection(start_server: Any) -> None:
    handler = Sender()
    server = start_server(handler, workers=0, ping_interval=0)
    with connect(server.url, compression="deflate", max_size=2**23) as ws:
        ws.send("big-abort")
        with pytest.raises(ConnectionClosedError):  # no close frame: the TCP connection was dropped
            while True:
                ws.recv(timeout=10)
    assert handler.wait_close()[0] == 1006
    with connect(server.url, compression="deflate", max_size=2**23) as ws:  # the server goes on
        ws.send("big")
        assert ws.recv(timeout=10) == BIG
        assert [ws.recv(timeout=10) for _ in range(3)] == ["small-1", b"b" * 300, "small-2"]
