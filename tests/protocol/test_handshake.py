"""The opening handshake (protocol/handshake.py), RFC 6455 §4.2."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snow_rt_py.protocol.errors import HandshakeError, UsageError
from snow_rt_py.protocol.handshake import (  # the private rules: the fast path is checked against them
    _HEADER_BLOCK,
    _HEADER_FIELDS,
    PlainRequest,
    RequestParser,
    _header_items,
    accept_key,
    build_error_response,
    build_response,
    build_response_101,
    parse_request,
)
from snow_rt_py.protocol.headers import Headers

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)


def expected_error(status_line: str, body: str, extra: str = "") -> bytes:
    """The exact error response, written out independently of the code under test."""
    encoded = (body + "\n").encode()
    return (
        f"HTTP/1.1 {status_line}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(encoded)}\r\n"
        "Connection: close\r\n"
        f"{extra}"
        "\r\n"
    ).encode() + encoded


def replace(old: bytes, new: bytes) -> bytes:
    assert old in REQUEST
    return REQUEST.replace(old, new)


def test_accept_key_rfc_vector() -> None:
    assert accept_key(KEY) == ACCEPT


def test_response_101_bytes() -> None:
    assert build_response_101(KEY) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )


def test_response_101_with_extra_headers() -> None:
    response = build_response_101(KEY, [("Sec-WebSocket-Protocol", "chat"), ("X-Id", "7")])
    assert response.endswith(
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\nX-Id: 7\r\n\r\n"
    )


@pytest.mark.parametrize(
    "header", [("Bad Name", "x"), ("", "x"), ("X", "a\r\nInjected: 1"), ("X", "a\nb"), ("X", "\x00")]
)
def test_extra_headers_are_checked(header: tuple[str, str]) -> None:
    with pytest.raises(UsageError):
        build_response_101(KEY, [header])
    with pytest.raises(UsageError):
        build_error_response(403, "no", [header])


def test_error_response_bytes() -> None:
    assert build_error_response(403, "Forbidden origin.") == (
        b"HTTP/1.1 403 Forbidden\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 18\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"Forbidden origin.\n"
    )


def test_error_response_utf8_body_and_extra_header() -> None:
    assert build_error_response(503, "busy é", [("Retry-After", "5")]) == expected_error(
        "503 Service Unavailable", "busy é", "Retry-After: 5\r\n"
    )


def test_error_response_unknown_status_phrase() -> None:
    assert build_error_response(499, "x").startswith(b"HTTP/1.1 499 Error\r\n")


@pytest.mark.parametrize("status", [101, 200, 299, 600, True])
def test_error_response_status_range(status: int) -> None:
    with pytest.raises(UsageError):
        build_error_response(status, "x")


# -- a valid request ----------------------------------------------------------------------------------------


def test_parse_valid_request() -> None:
    target, headers, key = parse_request(REQUEST)
    assert target == "/chat?room=1"
    assert key == KEY
    assert headers["origin"] == "http://example.com"
    assert list(headers) == ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Origin", "Sec-WebSocket-Version"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade"),
        replace(b"Connection: Upgrade", b"Connection: keep-alive\r\nConnection: UPGRADE"),
        replace(b"Upgrade: websocket", b"Upgrade: h2c, WebSocket"),
        replace(b"HTTP/1.1", b"HTTP/1.2"),
        replace(b"/chat?room=1", b"ws://server.example.com/chat"),
        replace(b"Origin: http://example.com", b"X-Empty:\r\nX-Spaces: \t a b \t\r\nX-Latin: caf\xe9"),
        REQUEST.replace(b"\r\n", b"\n"),  # bare LF line endings (RFC 9112 §2.2)
    ],
)
def test_parse_valid_variants(request_bytes: bytes) -> None:
    target, _, key = parse_request(request_bytes)
    assert key == KEY
    assert target.endswith("/chat") or target == "/chat?room=1"


def test_header_values_are_stripped_and_latin1() -> None:
    head = replace(b"Origin: http://example.com", b"X-Spaces: \t a b \t\r\nX-Latin: caf\xe9")
    _, headers, _ = parse_request(head)
    assert headers["X-Spaces"] == "a b"
    assert headers["X-Latin"] == "café"


# -- every invalid request: status, reason and the exact response ---------------------------------------------

BAD_REQUESTS = [
    # (request, status line, reason, extra response header)
    (b"\r\n\r\n", "400 Bad Request", "Malformed request line.", ""),
    (replace(b"GET /chat?room=1 HTTP/1.1", b"GET /chat HTTP/1.1 extra"), "400 Bad Request",
     "Malformed request line.", ""),
    (replace(b"GET /chat?room=1 HTTP/1.1", b"GET  /chat HTTP/1.1"), "400 Bad Request", "Malformed request line.", ""),
    (replace(b"GET /chat?room=1 HTTP/1.1", b"GET /chat HTTP/1"), "400 Bad Request", "Malformed request line.", ""),
    (replace(b"GET /chat?room=1 HTTP/1.1", b"\x16\x03\x01\x02\x00"), "400 Bad Request", "Malformed request line.", ""),
    (replace(b"GET /chat?room=1", b"GET /ch\xc3\xa4t"), "400 Bad Request", "Malformed request line.", ""),
    (replace(b"HTTP/1.1", b"HTTP/1.0"), "400 Bad Request", "HTTP/1.1 or later required.", ""),
    (replace(b"HTTP/1.1", b"HTTP/0.9"), "400 Bad Request", "HTTP/1.1 or later required.", ""),
    (replace(b"/chat?room=1", b"*"), "400 Bad Request", "Invalid request target.", ""),
    (replace(b"GET ", b"POST "), "405 Method Not Allowed", "Method not allowed.", "Allow: GET\r\n"),
    (replace(b"GET ", b"get "), "405 Method Not Allowed", "Method not allowed.", "Allow: GET\r\n"),
    (replace(b"Origin: http", b"Origin http"), "400 Bad Request", "Malformed header line.", ""),
    (replace(b"Origin: http", b"Origin : http"), "400 Bad Request", "Malformed header line.", ""),
    (replace(b"Origin: http", b": http"), "400 Bad Request", "Malformed header line.", ""),
    (replace(b"Origin: http://example.com", b"Origin: http://ex\x01ample.com"), "400 Bad Request",
     "Malformed header line.", ""),
    (replace(b"Origin: http://example.com", b"Origin: a\x7fb"), "400 Bad Request", "Malformed header line.", ""),
    (replace(b"Origin: http://example.com", b"Origin: a\rb"), "400 Bad Request", "Malformed header line.", ""),
    (replace(b"Origin: http://example.com", b"Or\xc3\xafgin: x"), "400 Bad Request", "Malformed header line.", ""),
    (replace(b"Origin: http://example.com\r\n", b"Origin: http://\r\n example.com\r\n"), "400 Bad Request",
     "Obsolete line folding is not allowed.", ""),
    (replace(b"Host: server.example.com\r\n", b""), "400 Bad Request", "Missing or repeated Host header.", ""),
    (replace(b"Host: server.example.com\r\n", b"Host: a\r\nHost: b\r\n"), "400 Bad Request",
     "Missing or repeated Host header.", ""),
    (replace(b"Origin: http://example.com", b"Content-Length: 5"), "400 Bad Request",
     "A WebSocket handshake request has no body.", ""),
    (replace(b"Origin: http://example.com", b"Transfer-Encoding: chunked"), "400 Bad Request",
     "A WebSocket handshake request has no body.", ""),
    (replace(b"Upgrade: websocket", b"Upgrade: websockets"), "400 Bad Request",
     "Upgrade header must include websocket.", ""),
    (replace(b"Connection: Upgrade\r\n", b""), "400 Bad Request", "Connection header must include upgrade.", ""),
    (replace(b"Connection: Upgrade", b"Connection: keep-alive"), "400 Bad Request",
     "Connection header must include upgrade.", ""),
    (replace(b"Connection: Upgrade", b"Connection: Upgraded"), "400 Bad Request",
     "Connection header must include upgrade.", ""),
    (replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), "400 Bad Request",
     "Missing or invalid Sec-WebSocket-Key header.", ""),
    (replace(KEY.encode(), b"dGhlIHNhbXBsZSBub25jZQ"), "400 Bad Request",  # missing padding
     "Missing or invalid Sec-WebSocket-Key header.", ""),
    (replace(KEY.encode(), b"dGhlIHNhbXBsZSBub25jZXM="), "400 Bad Request",  # 17 bytes
     "Missing or invalid Sec-WebSocket-Key header.", ""),
    (replace(KEY.encode(), b"dGhlIHNhbXBsZSBub25j"), "400 Bad Request",  # 15 bytes
     "Missing or invalid Sec-WebSocket-Key header.", ""),
    (replace(KEY.encode(), b"dGhlIHNhbXBs ZSBub25jZQ=="), "400 Bad Request",
     "Missing or invalid Sec-WebSocket-Key header.", ""),
    (replace(KEY.encode(), b"dGhlIHNhbXBsZSBub25jZQ==\xe9"), "400 Bad Request",
     "Missing or invalid Sec-WebSocket-Key header.", ""),
    (replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
     "400 Bad Request", "Missing or invalid Sec-WebSocket-Key header.", ""),
    (replace(b"Sec-WebSocket-Version: 13\r\n", b""), "426 Upgrade Required", "Unsupported WebSocket version.",
     "Sec-WebSocket-Version: 13\r\n"),
    (replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"), "426 Upgrade Required",
     "Unsupported WebSocket version.", "Sec-WebSocket-Version: 13\r\n"),
    (replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 13, 8"), "426 Upgrade Required",
     "Unsupported WebSocket version.", "Sec-WebSocket-Version: 13\r\n"),
]  # fmt: skip


@pytest.mark.parametrize(("request_bytes", "status_line", "reason", "extra"), BAD_REQUESTS)
def test_invalid_request(request_bytes: bytes, status_line: str, reason: str, extra: str) -> None:
    with pytest.raises(HandshakeError) as info:
        RequestParser().feed(request_bytes)
    error = info.value
    assert error.status == int(status_line.split()[0])
    assert error.reason == reason
    assert build_error_response(error.status, error.reason, error.headers) == expected_error(status_line, reason, extra)


# -- plain HTTP requests (no Upgrade header): GET and HEAD are returned, not failed ------------------------------

PLAIN = b"GET /page?x=1 HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n\r\n"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "head",
    [PLAIN, replace(b"Upgrade: websocket\r\n", b"")],  # a handshake that lost its Upgrade header is plain too
)
def test_plain_get_and_head_are_returned_with_their_method(method: str, head: bytes) -> None:
    head = head.replace(b"GET ", method.encode() + b" ", 1)
    parser = RequestParser()
    result = parser.feed(head[:10])
    assert result is None
    result = parser.feed(head[10:] + b"ignored")
    assert isinstance(result, PlainRequest)
    assert result.method == method
    assert result.target == head.split(b" ")[1].decode()
    assert result.headers["host"] in ("h", "server.example.com")
    with pytest.raises(UsageError):
        parser.feed(b"x")


@pytest.mark.parametrize(
    ("head", "status", "reason", "extra"),
    [
        (PLAIN.replace(b"GET", b"POST"), "405 Method Not Allowed", "Method not allowed.", "Allow: GET\r\n"),
        (PLAIN.replace(b"GET", b"OPTIONS"), "405 Method Not Allowed", "Method not allowed.", "Allow: GET\r\n"),
        (PLAIN.replace(b"GET", b"head"), "405 Method Not Allowed", "Method not allowed.", "Allow: GET\r\n"),
        (replace(b"GET ", b"HEAD "), "405 Method Not Allowed", "Method not allowed.", "Allow: GET\r\n"),  # upgrade
        (PLAIN.replace(b"GET", b"HEAD").replace(b"Host: h\r\n", b""), "400 Bad Request",
         "Missing or repeated Host header.", ""),
        (PLAIN.replace(b"GET", b"HEAD").replace(b"Accept", b"Content-Length: 1\r\nAccept"), "400 Bad Request",
         "A WebSocket handshake request has no body.", ""),
    ],
)  # fmt: skip
def test_other_plain_requests_still_fail(head: bytes, status: str, reason: str, extra: str) -> None:
    with pytest.raises(HandshakeError) as info:
        RequestParser().feed(head)
    error = info.value
    assert build_error_response(error.status, error.reason, error.headers) == expected_error(status, reason, extra)


@pytest.mark.parametrize(("method", "status"), [("GET", 400), ("HEAD", 405)])
def test_parse_request_wants_a_handshake(method: str, status: int) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(PLAIN.replace(b"GET", method.encode()))
    assert info.value.status == status


def test_response_to_head_is_the_get_response_without_its_body() -> None:
    get = build_response(404, b"Not found.\n", "text/plain; charset=utf-8", [("X-A", "1")])
    assert get == (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 11\r\n"
        b"Connection: close\r\n"
        b"X-A: 1\r\n"
        b"\r\n"
        b"Not found.\n"
    )
    head = build_response(404, b"Not found.\n", "text/plain; charset=utf-8", [("X-A", "1")], method="HEAD")
    assert head == get.removesuffix(b"Not found.\n")


# -- the incremental, bounded parser -----------------------------------------------------------------------


def test_parser_one_byte_at_a_time() -> None:
    parser = RequestParser()
    frame = b"\x81\x80\x00\x00\x00\x00"
    data = REQUEST + frame
    for i in range(len(REQUEST) - 1):
        assert parser.feed(data[i : i + 1]) is None
    result = parser.feed(data[len(REQUEST) - 1 :])
    assert result is not None
    assert result.target == "/chat?room=1"
    assert result.key == KEY
    assert result.rest == frame
    assert isinstance(result.headers, Headers)


def test_parser_terminator_split_across_feeds() -> None:
    for cut in range(len(REQUEST) - 4, len(REQUEST)):
        parser = RequestParser()
        assert parser.feed(REQUEST[:cut]) is None
        result = parser.feed(REQUEST[cut:] + b"rest")
        assert result is not None
        assert result.rest == b"rest"


def test_parser_refuses_feed_after_result() -> None:
    parser = RequestParser()
    assert parser.feed(REQUEST) is not None
    with pytest.raises(UsageError):
        parser.feed(b"x")


def test_head_of_exactly_max_size_is_accepted() -> None:
    assert RequestParser(max_size=len(REQUEST)).feed(REQUEST) is not None


def test_head_one_byte_over_max_size_is_431() -> None:
    with pytest.raises(HandshakeError) as info:
        RequestParser(max_size=len(REQUEST) - 1).feed(REQUEST)
    assert info.value.status == 431
    assert build_error_response(info.value.status, info.value.reason, info.value.headers) == expected_error(
        "431 Request Header Fields Too Large", "Request headers too large."
    )


def test_431_as_soon_as_the_limit_is_exceeded() -> None:
    parser = RequestParser(max_size=100)
    assert parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 81) is None  # exactly 100 bytes
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"a")
    assert info.value.status == 431


def test_431_never_buffers_without_bound_byte_by_byte() -> None:
    parser = RequestParser(max_size=1024)
    with pytest.raises(HandshakeError) as info:
        for _ in range(2000):
            parser.feed(b"a")
    assert info.value.status == 431
    assert len(parser._buffer) == 0  # released


def test_pipelined_bytes_do_not_count_against_the_limit() -> None:
    result = RequestParser(max_size=len(REQUEST)).feed(REQUEST + b"x" * 100_000)
    assert result is not None
    assert len(result.rest) == 100_000


def test_garbage_request_line_fails_before_the_head_is_complete() -> None:
    parser = RequestParser()
    assert parser.feed(b"\x16\x03\x01\x02\x00\x01\x00") is None
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"\x01\xfc\x03\x03\n")
    assert (info.value.status, info.value.reason) == (400, "Malformed request line.")


def test_http_10_fails_at_the_request_line() -> None:
    with pytest.raises(HandshakeError) as info:
        RequestParser().feed(b"GET / HTTP/1.0\r\n")
    assert (info.value.status, info.value.reason) == (400, "HTTP/1.1 or later required.")


def test_valid_request_line_waits_for_the_headers() -> None:
    parser = RequestParser()
    assert parser.feed(b"POST / HTTP/1.1\r\n") is None  # 405 needs the whole head: header errors come first
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"Bad Header\r\n\r\n")
    assert info.value.status == 400


def test_request_line_longer_than_max_size_is_431_not_400() -> None:
    with pytest.raises(HandshakeError) as info:
        RequestParser(max_size=10).feed(b"garbage garbage\r\n\r\n")
    assert info.value.status == 431


# -- the header block in one match (issue 26) against the line-by-line rule ----------------------------------

_LINE_PIECES = st.sampled_from(["Host", "X-A", "a", ":", " ", "\t", "\r", "v", "é", "\x7f", "\x01", ";", "=", "ab c"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_LINE_PIECES, max_size=8).map("".join), max_size=6), st.sampled_from(["\r\n", "\n"]))
def test_a_head_parses_the_same_whole_or_line_by_line(lines: list[str], eol: str) -> None:
    """Every header block gets the same verdict from the one-match fast path as from the line-by-line rule: the same
    headers, or the same 400; and the same in any chunking of the request."""
    valid = ["Host: x", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}"]
    lines = [*valid[:2], *lines, *valid[2:], "Sec-WebSocket-Version: 13"]
    head = ("GET / HTTP/1.1" + eol + "".join(line + eol for line in lines) + eol).encode("latin-1")

    def outcome(feed_chunks: list[bytes]) -> object:
        parser = RequestParser()
        try:
            for chunk in feed_chunks:
                got = parser.feed(chunk)
                if got is not None:
                    return (type(got).__name__, got.headers.items())
        except HandshakeError as exc:
            return ("error", exc.status, exc.reason)
        return None

    whole = outcome([head])
    assert whole == outcome([head[i : i + 1] for i in range(len(head))])
    try:
        expected: object = ("items", _header_items(head.decode("latin-1")))
    except HandshakeError as exc:
        expected = ("error", exc.status, exc.reason)
    block = "".join(line + eol for line in lines)
    match = _HEADER_BLOCK.fullmatch(block)
    fast: object = ("items", _HEADER_FIELDS.findall(block)) if match is not None else None
    if fast is not None:
        assert fast == expected
    else:
        assert expected[0] == "error"
