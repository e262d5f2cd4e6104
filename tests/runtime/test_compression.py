"""permessage-deflate over real sockets: what each mode answers, bytes on the wire (RSV1, min size), the bomb and
corrupt data from a client, encode-once broadcast (the same frame object queued for every compressed member), the
dedicated-mode memory budget and its fallback, and the front doors' options."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import zlib
from typing import Any

import pytest
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import Connection, Handler, Headers
from snow_rt_py.apps import APPS
from snow_rt_py.protocol.frames import encode_frame
from snow_rt_py.testing import RawClient
from tests.support import Recorder

pytestmark = pytest.mark.timeout(60)

OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"


def raw(port: int, offer: str | None = OFFER) -> tuple[RawClient, str]:
    """A raw client that offered ``offer``; returns it with the server's Sec-WebSocket-Extensions answer."""
    client = RawClient(port)
    status, headers, _ = client.handshake("/", {"Sec-WebSocket-Extensions": offer} if offer else None)
    assert status == 101
    return client, headers.get("sec-websocket-extensions", "")


def client_compressed(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + TAIL)


def test_each_mode_answers_as_documented(start_server) -> None:
    answers = {}
    for mode in ("shared", "dedicated", "off"):
        server = start_server(APPS["echo"](), compression=mode, ping_interval=0)
        client, answers[mode] = raw(server.port)
        client.close()
    assert answers == {
        "shared": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "dedicated": "permessage-deflate; client_max_window_bits=12",
        "off": "",
    }


def test_echo_on_the_wire_rsv1_and_min_size(start_server) -> None:
    server = start_server(APPS["echo"](), compression_min_size=100, ping_interval=0)
    client, answer = raw(server.port)
    assert answer.startswith("permessage-deflate")
    big = b'{"user":"alice","text":"hello hello hello"}' * 10
    client.send_frame(1, client_compressed(big), rsv=4)
    frame = client.recv_frame()
    assert frame.rsv == 4 and frame.opcode == 1 and inflate(frame.payload) == big
    assert len(frame.payload) < len(big) // 3
    # Under compression_min_size: sent plain (RSV1 clear), as RFC 7692 §6 allows per message.
    client.send_frame(1, client_compressed(b"short"), rsv=4)
    frame = client.recv_frame()
    assert (frame.rsv, frame.payload) == (0, b"short")
    # A plain message from the client is fine too.
    client.send_frame(2, big)
    frame = client.recv_frame()
    assert frame.rsv == 4 and frame.opcode == 2 and inflate(frame.payload) == big
    client.close()


def test_no_offer_no_extension_and_rsv1_is_1002(start_server) -> None:
    server = start_server(APPS["echo"](), ping_interval=0)
    client, answer = raw(server.port, None)
    assert answer == ""
    client.send_frame(1, client_compressed(b"x" * 200), rsv=4)
    assert client.expect_close()[0] == 1002
    client.close()


def test_bomb_from_a_client_is_1009_and_corrupt_data_1007(start_server) -> None:
    server = start_server(APPS["echo"](), max_message_size=1 << 20, ping_interval=0)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = b"".join(c.compress(bytes(1 << 20)) for _ in range(200))  # 200 MiB of zeros, about 200 KiB
    client, _ = raw(server.port)
    client.send_frame(2, bomb, rsv=4)
    code, reason = client.expect_close()
    assert (code, reason) == (1009, "message too big")
    client.close()
    client, _ = raw(server.port)
    client.send_frame(1, b"\xff\xff\xff\xff not deflate", rsv=4)
    assert client.expect_close() == (1007, "invalid compressed data")
    client.close()


class Room(Handler):
    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        snow_rt_py.join(conn, "r")
        return True


def test_broadcast_is_compressed_once_same_frame_object_for_every_compressed_member(start_server) -> None:
    """Encode once: the one compressed frame object is queued for every shared-mode member; plain members get the
    plain frame; a dedicated member its own; and every client reads the message."""
    shared = start_server(Room(), ping_interval=0)
    dedicated = start_server(Room(), compression="dedicated", ping_interval=0)
    clients = [raw(shared.port)[0] for _ in range(3)]
    clients += [raw(shared.port, None)[0], raw(shared.port, None)[0]]  # no compression offered
    clients.append(raw(dedicated.port)[0])
    runtime = snow_rt_py.default_runtime()
    message = '{"type":"chat","room":"r","text":"' + "hello " * 50 + '"}'

    async def broadcast_and_look() -> list[Any]:
        # On the loop thread: the frames are queued (the flush comes at the end of the iteration) and can be seen.
        for _ in range(200):
            if runtime.rooms.member_count("r") == 6:
                break
            await asyncio.sleep(0.01)
        members = runtime.rooms.members("r")
        assert runtime.rooms.broadcast("r", message) == 0
        return [(m._deflate.mode if m._deflate else None, m._out[-1]) for m in members]

    queued = runtime.loop_thread.run(broadcast_and_look())
    compressed = [frame for mode, frame in queued if mode == "shared"]
    plain = [frame for mode, frame in queued if mode is None]
    own = [frame for mode, frame in queued if mode == "dedicated"]
    assert len(compressed) == 3 and len(plain) == 2 and len(own) == 1
    assert all(frame is compressed[0] for frame in compressed)  # the identical bytes object
    assert compressed[0][0] & 0x40 and not plain[0][0] & 0x40 and own[0][0] & 0x40
    assert all(frame is plain[0] for frame in plain)
    for client in clients:
        frame = client.recv_frame()
        data = inflate(frame.payload) if frame.rsv == 4 else frame.payload
        assert data.decode() == message
        client.close()


def test_dedicated_budget_falls_back_to_shared_and_is_given_back(start_server) -> None:
    # One dedicated connection's state (window 12, memLevel 5, client window 12) is ~49 KiB: a 60 KiB budget fits one.
    server = start_server(APPS["echo"](), compression="dedicated", compression_memory_budget=60 * 1024, ping_interval=0)
    first, answer1 = raw(server.port)
    second, answer2 = raw(server.port)
    assert answer1 == "permessage-deflate; client_max_window_bits=12"
    assert answer2 == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    stats = server.server.compression_statistics()
    assert (stats["dedicated"], stats["shared"], stats["fallbacks"], stats["dedicated_now"]) == (1, 1, 1, 1)
    assert 0 < stats["reserved_bytes"] <= 60 * 1024
    # Both work, with a context kept on the first: the same message twice is smaller the second time.
    text = b'{"user":"bob","text":"the same words again"}' * 4
    sizes = []
    for client in (first, first, second):
        client.send_frame(1, text)
        frame = client.recv_frame()
        assert frame.rsv == 4
        sizes.append(len(frame.payload))
    assert sizes[1] < sizes[0]
    first.send_close(1000)
    first.expect_close()
    first.close()
    for _ in range(250):  # the server sees the TCP close a moment later
        if server.server.compression_statistics()["reserved_bytes"] == 0:
            break
        time.sleep(0.02)
    assert server.server.compression_statistics()["reserved_bytes"] == 0
    third, answer3 = raw(server.port)
    assert answer3 == "permessage-deflate; client_max_window_bits=12"  # the budget is free again
    second.close()
    third.close()


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
def test_websockets_client_round_trips_every_size(start_server, mode: str) -> None:
    server = start_server(APPS["echo"](), compression=mode, ping_interval=0)
    with connect(server.url, max_size=None) as ws:  # websockets offers permessage-deflate by default
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        for message in ["", "é" * 10, "x" * 1000, os.urandom(70_000), b"\0" * (1 << 20), "json " * 40_000]:
            ws.send(message)
            assert ws.recv() == message


def test_worker_threads_and_ordering_in_dedicated_mode(start_server) -> None:
    """Replies sent from worker threads with a context taken over must reach the client in the order compressed."""

    class Burst(Recorder):
        def on_message(self, conn: Connection, message: str | bytes) -> None:
            for i in range(50):
                conn.send(f"{message} {i} " + "abc" * 50)

    server = start_server(Burst(), compression="dedicated", workers=2, ping_interval=0)
    with connect(server.url) as ws:
        ws.send("go")
        got = [ws.recv() for _ in range(50)]
    assert got == [f"go {i} " + "abc" * 50 for i in range(50)]


def test_cli_rejects_a_bad_mode() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snow_rt_py", "serve", "--compression", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--compression" in result.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"compression": "fast"}, "compression must be 'shared', 'dedicated' or 'off'"),
        ({"compression_window_bits": 16}, "compression_window_bits must be 8 to 15"),
        ({"compression_mem_level": 0}, "compression_mem_level must be 1 to 9"),
        ({"compression_min_size": -1}, "compression_min_size must be >= 0"),
    ],
)
def test_bad_options_are_refused_with_a_message(option: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        snow_rt_py.start(Recorder(), port=0, **option)


def test_uncompressed_frames_still_accepted_after_compressed_fragmented_one(start_server) -> None:
    server = start_server(APPS["echo"](), ping_interval=0, compression_min_size=0)
    client, _ = raw(server.port)
    payload = client_compressed("fragmented é message ".encode() * 20)
    client.send_raw(encode_frame(1, payload[:5], fin=False, rsv=4, mask=b"wxyz"))
    client.send_raw(encode_frame(9, b"ping", mask=b"wxyz"))  # a control frame between fragments
    client.send_raw(encode_frame(0, payload[5:], fin=True, mask=b"wxyz"))
    assert client.recv_frame().opcode == 10
    frame = client.recv_frame()
    assert inflate(frame.payload) == "fragmented é message ".encode() * 20
    client.close()


def test_large_incompressible_messages_go_out_plain(start_server) -> None:
    """From 256 KiB on, a message whose start does not compress is sent plain (RSV1 clear): no time spent deflating
    random bytes. A compressible one of the same size is compressed."""
    server = start_server(APPS["echo"](), ping_interval=0, max_message_size=4 << 20)
    client, _ = raw(server.port)
    noise = os.urandom(1 << 20)
    client.send_frame(2, noise)
    frame = client.recv_frame()
    assert (frame.rsv, frame.payload) == (0, noise)
    text = b'{"user":"carol","text":"a compressible message"}' * 22_000
    client.send_frame(1, text)
    frame = client.recv_frame()
    assert frame.rsv == 4 and inflate(frame.payload) == text and len(frame.payload) < len(text) // 20
    client.close()
