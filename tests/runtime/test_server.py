"""End-to-end tests of the server over real sockets on 127.0.0.1: the `websockets` library as an independent
client, and a raw client for exact bytes on the wire (close codes, HTTP statuses)."""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from snow_rt_py import Connection, Handler
from snow_rt_py.testing import RawClient

pytestmark = pytest.mark.timeout(30)

SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024]


def ws_connect(url: str, **kw: object):  # type: ignore[no-untyped-def]
    return connect(url, open_timeout=5, close_timeout=5, max_size=None, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", SIZES)
def test_echo_text_and_binary_of_every_length_encoding(start_server, size: int) -> None:
    server = start_server()
    text = ("é" * size)[: size // 2] + "x" * (size - 2 * (size // 2))
    data = os.urandom(size)
    with ws_connect(server.url) as ws:
        ws.send(text)
        assert ws.recv(timeout=10) == text
        ws.send(data)
        assert ws.recv(timeout=10) == data


def test_echo_16_mib_message_at_the_default_limit(start_server) -> None:
    server = start_server()
    data = os.urandom(16 * 1024 * 1024)
    with ws_connect(server.url) as ws:
        ws.send(data)
        assert ws.recv(timeout=30) == data


class MixedSizes(Handler):
    """On any message: replies small and large (>= 64 KiB: queued as header + payload, not copied) in turn, the
    large binary one from a bytearray that is overwritten right after the call."""

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        buffer = bytearray(b"A" * 100_000)
        conn.send("small 1")
        conn.send(buffer)
        buffer[:] = b"B" * 100_000  # the message above was taken as it was at the call
        conn.send("é" * 40_000)  # 80,000 bytes of UTF-8
        conn.send(b"small 2")
        conn.send(bytes(buffer))


def test_large_and_small_replies_keep_their_order_and_content(start_server) -> None:
    server = start_server(MixedSizes())
    with ws_connect(server.url) as ws:
        ws.send("go")
        got = [ws.recv(timeout=10) for _ in range(5)]
    assert got == ["small 1", b"A" * 100_000, "é" * 40_000, b"small 2", b"B" * 100_000]


def test_fragmented_input_is_reassembled(start_server, recorder) -> None:
    server = start_server(recorder)
    with ws_connect(server.url) as ws:
        ws.send(["hel", "lo ", "wörld"])
        assert ws.recv(timeout=5) == "hello wörld"
        ws.send([b"\x00\x01", b"", b"\x02"])
        assert ws.recv(timeout=5) == b"\x00\x01\x02"
    messages = [c[2] for c in recorder.calls if c[0] == "message"]
    assert messages == ["hello wörld", b"\x00\x01\x02"]


def test_client_ping_gets_pong_with_same_payload(start_server) -> None:
    server = start_server()
    with ws_connect(server.url) as ws:
        assert ws.ping(b"are you there").wait(5)
    with RawClient.connect(server.port) as c:
        c.send_frame(9, b"\x01\x02payload")
        frame = c.recv_frame()
        assert (frame.opcode, frame.payload, frame.fin, frame.masked) == (10, b"\x01\x02payload", True, False)


def test_messages_stay_in_order(start_server) -> None:
    server = start_server()
    with ws_connect(server.url) as ws:
        for i in range(200):
            ws.send(f"m{i}")
        assert [ws.recv(timeout=5) for _ in range(200)] == [f"m{i}" for i in range(200)]


def test_server_frames_are_unmasked_fin_and_shortest_encoding(start_server) -> None:
    server = start_server()
    with RawClient.connect(server.port) as c:
        for size, header in [
            (5, b"\x82\x05"),
            (126, b"\x82\x7e\x00\x7e"),
            (65536, b"\x82\x7f" + struct.pack("!Q", 65536)),
        ]:
            c.send_binary(b"a" * size)
            c._need(len(header))
            assert bytes(c.buf[: len(header)]) == header
            frame = c.recv_frame()
            assert frame.payload == b"a" * size


# -- close handshake -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
def test_client_close_is_echoed_and_tcp_closed_and_reported(start_server, recorder, code: int) -> None:
    server = start_server(recorder)
    with RawClient.connect(server.port) as c:
        c.send_close(code, "bye")
        assert c.expect_close()[0] == code
        assert c.wait_eof()
    assert recorder.wait_close() == (code, "bye")


def test_close_reply_carries_the_clients_code(start_server) -> None:
    server = start_server()
    with RawClient.connect(server.port) as c:
        c.send_close(4321, "done")
        frame = c.recv_frame()
        assert frame.opcode == 8 and frame.close_code() == 4321


def test_empty_close_gets_a_reply_that_is_never_1005(start_server, recorder) -> None:
    server = start_server(recorder)
    with RawClient.connect(server.port) as c:
        c.send_close(None)
        frame = c.recv_frame()
        assert frame.opcode == 8
        assert frame.payload in (b"", struct.pack("!H", 1000))
        assert c.wait_eof()
    assert recorder.wait_close() == (1005, "")


def test_websockets_client_close_code_and_reason_reach_on_close(start_server, recorder) -> None:
    server = start_server(recorder)
    with ws_connect(server.url) as ws:
        ws.close(4000, "custom reason")
        assert ws.close_code == 4000
    assert recorder.wait_close() == (4000, "custom reason")


def test_drop_without_close_reports_1006(start_server, recorder) -> None:
    server = start_server(recorder)
    c = RawClient.connect(server.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    assert recorder.wait_close() == (1006, "")


def expect_failure(port: int, send, code: int) -> str:  # type: ignore[no-untyped-def]
    with RawClient.connect(port) as c:
        send(c)
        got, reason = c.expect_close()
        assert got == code, (got, reason)
        assert c.wait_eof()
        return reason


FAILURES = {
    "unmasked frame": (lambda c: c.send_frame(1, b"hi", mask=False), 1002),
    "rsv1 without extension": (lambda c: c.send_frame(1, b"hi", rsv=4), 1002),
    "rsv2": (lambda c: c.send_frame(2, b"hi", rsv=2), 1002),
    "rsv3": (lambda c: c.send_frame(2, b"hi", rsv=1), 1002),
    "reserved opcode 3": (lambda c: c.send_frame(3, b""), 1002),
    "reserved opcode 0xB": (lambda c: c.send_frame(0xB, b""), 1002),
    "ping over 125 bytes": (lambda c: c.send_frame(9, b"x" * 126), 1002),
    "fragmented ping": (lambda c: c.send_frame(9, b"x", fin=False), 1002),
    "continuation without start": (lambda c: c.send_frame(0, b"x"), 1002),
    "new message inside fragmented one": (
        lambda c: (c.send_frame(1, b"a", fin=False), c.send_frame(1, b"b")),
        1002,
    ),
    "one-byte close payload": (lambda c: c.send_frame(8, b"\x03"), 1002),
    "close code 1005 on the wire": (lambda c: c.send_close(1005), 1002),
    "close code 1006 on the wire": (lambda c: c.send_close(1006), 1002),
    "close code 999": (lambda c: c.send_close(999), 1002),
    "close code 2000": (lambda c: c.send_close(2000), 1002),
    "close code 5000": (lambda c: c.send_close(5000), 1002),
    "invalid utf-8 text": (lambda c: c.send_frame(1, b"\xff"), 1007),
    "invalid utf-8 in first fragment": (lambda c: c.send_frame(1, b"ok\xed\xa0\x80", fin=False), 1007),
    "invalid utf-8 close reason": (lambda c: c.send_frame(8, b"\x03\xe8\xff"), 1007),
}


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_protocol_violations_close_with_their_code(start_server, recorder, name: str) -> None:
    send, code = FAILURES[name]
    server = start_server(recorder)
    expect_failure(server.port, send, code)
    assert recorder.wait_close()[0] == code


def test_message_over_max_size_is_1009_from_the_header(start_server) -> None:
    server = start_server(max_message_size=1000)
    with RawClient.connect(server.port) as c:
        # Only the header of a 1 GiB frame: the server must answer without waiting for the payload.
        c.send_raw(b"\x82\xff" + struct.pack("!Q", 1 << 30) + b"abcd")
        assert c.expect_close()[0] == 1009
    expect_failure(server.port, lambda c: (c.send_frame(2, b"x" * 600, fin=False), c.send_frame(0, b"x" * 600)), 1009)
    with RawClient.connect(server.port) as c:
        c.send_binary(b"y" * 1000)
        assert c.recv_message() == b"y" * 1000


def test_split_utf8_across_fragments_and_interleaved_ping(start_server) -> None:
    server = start_server()
    euro = "€".encode()
    with RawClient.connect(server.port) as c:
        c.send_frame(1, b"a" + euro[:1], fin=False)
        c.send_frame(9, b"mid")
        c.send_frame(0, euro[1:2], fin=False)
        c.send_frame(0, euro[2:] + b"z")
        pong = c.recv_frame()
        assert (pong.opcode, pong.payload) == (10, b"mid")
        assert c.recv_message() == "a€z"


def test_frames_arriving_one_byte_at_a_time(start_server) -> None:
    server = start_server()
    with RawClient(server.port) as c:
        from snow_rt_py.protocol.frames import encode_frame

        data = c.request_bytes("/slow") + encode_frame(1, "héllo".encode(), mask=b"\x01\x02\x03\x04")
        for i in range(len(data)):
            c.send_raw(data[i : i + 1])
        status, _, _ = c.read_response()
        assert status == 101
        assert c.recv_message() == "héllo"


# -- handshake --------------------------------------------------------------------------------------------


def test_pipelined_first_frame_is_not_lost(start_server) -> None:
    server = start_server()
    from snow_rt_py.protocol.frames import encode_frame

    with RawClient(server.port) as c:
        c.send_raw(c.request_bytes() + encode_frame(1, b"first", mask=b"abcd"))
        assert c.read_response()[0] == 101
        assert c.recv_message() == "first"


def test_rfc_accept_key(start_server) -> None:
    server = start_server()
    with RawClient(server.port) as c:
        status, headers, _ = c.handshake(headers={"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert status == 101
        assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert headers["upgrade"].lower() == "websocket"


def test_connection_header_token_list(start_server) -> None:
    server = start_server()
    with RawClient(server.port) as c:
        assert c.handshake(headers={"Connection": "keep-alive, Upgrade"})[0] == 101


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Upgrade": ""}, 400),
        ({"Upgrade": "h2c"}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Host": ""}, 400),
        ({"Sec-WebSocket-Key": ""}, 400),
        ({"Sec-WebSocket-Key": "dG9vc2hvcnQ="}, 400),
        ({"Sec-WebSocket-Key": "not base64!!!!!!!!!!!!=="}, 400),
    ],
)
def test_bad_handshakes_get_an_http_error_and_the_connection_closes(start_server, recorder, headers, status) -> None:
    server = start_server(recorder)
    with RawClient(server.port) as c:
        got, resp_headers, body = c.handshake(headers=headers)
        assert got == status
        assert body
        if status == 426:
            assert resp_headers["sec-websocket-version"] == "13"
        assert c.wait_eof()
    assert recorder.calls == []


def test_wrong_method_and_http_version(start_server) -> None:
    server = start_server()
    with RawClient(server.port) as c:
        c.send_raw(c.request_bytes().replace(b"GET ", b"POST ", 1))
        assert c.read_response()[0] in (400, 405)
    with RawClient(server.port) as c:
        c.send_raw(c.request_bytes().replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        assert c.read_response()[0] == 400


def test_oversized_handshake_gets_431_without_unbounded_buffering(start_server) -> None:
    server = start_server()
    with RawClient(server.port) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(40):  # 40 KiB of headers, more than the 16 KiB limit, never a blank line
            try:
                c.send_raw(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert c.read_response()[0] in (431, 400)


def test_handshake_deadline_closes_a_silent_client(start_server) -> None:
    server = start_server(handshake_timeout=0.3)
    with RawClient(server.port) as c:
        c.send_raw(b"GET / HTTP/1.1\r\n")
        t0 = time.monotonic()
        assert c.wait_eof()
        assert time.monotonic() - t0 < 3


def test_server_stop_sends_1001_and_reports_it(start_server, recorder) -> None:
    server = start_server(recorder)
    with ws_connect(server.url) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        server.stop()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1001
    assert recorder.wait_close()[0] == 1001


def test_plain_http_get_is_400_without_static_dir(start_server) -> None:
    server = start_server()
    with RawClient(server.port) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = c.read_response()
        assert status == 400 and b"websocket" in body
        assert c.wait_eof()


def test_static_dir_serves_files_for_plain_gets_and_nothing_outside(start_server, tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text("<h1>hi</h1>")
    (site / "app.js").write_text("let x = 1;")
    (tmp_path / "secret.txt").write_text("no")
    server = start_server(static_dir=site, static_index="page.html")

    def get(target: str) -> tuple[int, dict[str, str], bytes]:
        with RawClient(server.port) as c:
            c.send_raw(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            response = c.read_response()
            assert c.wait_eof()
            return response

    status, headers, body = get("/")
    assert (status, body) == (200, b"<h1>hi</h1>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert get("/app.js?v=1")[0] == 200
    assert get("/missing.html")[0] == 404
    assert get("/../secret.txt")[0] == 404
    assert get("/%2e%2e/secret.txt")[0] == 404
    with RawClient.connect(server.port) as ws:  # the same port still upgrades
        ws.send_text("x")
        assert ws.recv_message() == "x"


def test_static_dir_answers_head_like_get_without_the_body(start_server, tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text("<h1>hi</h1>")
    server = start_server(static_dir=site, static_index="page.html")

    def exchange(request: bytes) -> bytes:
        """Everything the server sends back to ``request`` before it closes the connection."""
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):  # the server closes after the response; timeout bounds the wait
                received += chunk
            return received

    for target, status_line in (("/", b"HTTP/1.1 200 OK\r\n"), ("/missing.html", b"HTTP/1.1 404 Not Found\r\n")):
        get = exchange(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = exchange(f"HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert get.startswith(status_line)
        get_head, _, get_body = get.partition(b"\r\n\r\n")
        assert int(get_head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) == len(get_body) > 0
        assert head == get_head + b"\r\n\r\n"  # same status and headers (Content-Length too), no body
    assert exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").endswith(b"\r\n\r\n<h1>hi</h1>")

    post = exchange(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n") and b"\r\nAllow: GET\r\n" in post
