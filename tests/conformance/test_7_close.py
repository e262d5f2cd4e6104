"""Category 7: the closing handshake (RFC 6455 §5.5.1, §7.1, §7.4).

"If an endpoint receives a Close frame and did not previously send a Close frame, the endpoint MUST send a
Close frame in response ... typically echo[ing] the status code it received" (§5.5.1); after both Close frames,
"the server MUST close the underlying TCP connection immediately" (§7.1.1) and no data follows the Close
(§5.5.1 "the application MUST NOT send any more data frames"). A Close body is empty or a 2-byte code plus a
UTF-8 reason; codes are valid only as §7.4.1/§7.4.2 and the IANA registry allow (1000-1003, 1007-1014,
3000-4999); 1004, 1005, 1006 and 1015 are reserved and "MUST NOT be set as a status code in a Close control
frame by an endpoint". A bad code or 1-byte body fails with 1002, a non-UTF-8 reason with 1007.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Server
from tests.conformance.rawws import BINARY, CLOSE, CONT, PING, TEXT, close_payload, frame

pytestmark = pytest.mark.timeout(30)

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def test_empty_close_answered(server: Server) -> None:
    """§5.5.1/§7.1.5: a Close without a body has no status code; the reply is a Close with an empty body or code
    1000 -- never 1005, which "MUST NOT be set as a status code in a Close control frame" (§7.4.1) -- then TCP
    is closed."""
    ws = server.connect()
    ws.send(CLOSE, b"")
    ws.expect_close(None)
    ws.expect_eof()


@pytest.mark.parametrize("code", VALID_CODES, ids=[str(c) for c in VALID_CODES])
def test_valid_close_code_echoed(server: Server, code: int) -> None:
    """§5.5.1/§7.4: a Close with a code a peer may send (§7.4.1 defined codes, IANA-registered 1012-1014,
    §7.4.2 3000-3999 registered and 4000-4999 private) is answered with a Close echoing that code, then TCP is
    closed."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(code))
    ws.expect_close(code)
    ws.expect_eof()


@pytest.mark.parametrize("code", INVALID_CODES, ids=[str(c) for c in INVALID_CODES])
def test_invalid_close_code_fails_1002(server: Server, code: int) -> None:
    """§7.4.1/§7.4.2: codes below 1000, the reserved 1004/1005/1006/1015, unassigned 1016-2999 and anything from
    5000 up are not valid on the wire; receiving one is a protocol error: Close 1002, then TCP closed."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(code, b"bad code"))
    ws.expect_fail(1002)


def test_one_byte_close_body_fails_1002(server: Server) -> None:
    """§5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned integer": a 1-byte
    body is malformed: Close 1002."""
    ws = server.connect()
    ws.send(CLOSE, b"\x03")
    ws.expect_fail(1002)


def test_close_with_reason_echoed(server: Server) -> None:
    """§5.5.1: a Close with code 1000 and a short reason is answered with a Close with code 1000."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(1000, b"bye now"))
    ws.expect_close(1000)
    ws.expect_eof()


def test_close_with_123_byte_reason(server: Server) -> None:
    """§5.5: a control body may be 125 bytes, so a 2-byte code plus a 123-byte reason is the largest valid Close:
    answered with Close 1000."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(1000, b"*" * 123))
    ws.expect_close(1000)
    ws.expect_eof()


def test_close_with_124_byte_reason_fails_1002(server: Server) -> None:
    """§5.5: a Close body of 126 bytes (code + 124-byte reason) exceeds the control-frame limit: 1002."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(1000, b"*" * 124))
    ws.expect_fail(1002)


@pytest.mark.parametrize(
    "reason",
    ["κόσμε".encode(), "\U0001f600 bye".encode(), "Hello-µ@ßöäüàá-UTF-8!!".encode()],
    ids=["greek", "emoji", "mixed"],
)
def test_close_with_multibyte_utf8_reason(server: Server, reason: bytes) -> None:
    """§5.5.1/§7.1.6: a reason in valid multi-byte UTF-8 is accepted: answered with Close 1000, then TCP closed."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(1000, reason))
    ws.expect_close(1000)
    ws.expect_eof()


@pytest.mark.parametrize(
    "reason",
    [b"\xff", b"bye \xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"cut \xe2\x82", "κόσμε".encode() + b"\xed"],
    ids=["byte-ff", "overlong", "surrogate", "beyond-max", "truncated", "valid-then-truncated"],
)
def test_close_with_invalid_utf8_reason_fails_1007(server: Server, reason: bytes) -> None:
    """§5.5.1: after the code, "the body MAY contain UTF-8-encoded data"; a reason that is not valid UTF-8 must
    be treated like invalid text (§8.1 _Fail the WebSocket Connection_): Close 1007 (§7.4.1), then TCP closed."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(1000, reason))
    ws.expect_fail(1007)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_data_after_close_is_ignored(server: Server, opcode: int) -> None:
    """§1.4/§5.5.1: "after receiving a control frame indicating the connection should be closed, a peer discards
    any further data received": a message written right after the client's Close is not echoed -- the Close
    reply, then TCP closed, nothing else."""
    ws = server.connect()
    ws.send_raw(frame(CLOSE, close_payload(1000)) + frame(opcode, b"after close") + frame(PING, b"after close"))
    ws.expect_close(1000)
    ws.expect_eof()


def test_message_then_close(server: Server) -> None:
    """§5.5.1/§7.1.2: a message followed by a Close: the message is echoed first ("an endpoint MAY delay sending
    a Close frame until its current message is sent"), then the Close reply, then TCP closed."""
    ws = server.connect()
    ws.send(TEXT, b"last words")
    ws.expect_message(TEXT, b"last words")
    ws.send(CLOSE, close_payload(1000))
    ws.expect_close(1000)
    ws.expect_eof()


@pytest.mark.parametrize("count", [1, 5], ids=["1-message", "5-messages"])
def test_messages_and_close_in_one_write(server: Server, count: int) -> None:
    """§5.5.1/§7.1.2: messages and a Close arriving together: the server may echo any leading part of the
    messages, in order (it "MAY delay sending a Close frame until its current message is sent"), but once its
    Close is sent nothing follows it (§5.5.1 "MUST NOT send any more data frames"): then TCP is closed."""
    ws = server.connect()
    sent = [(TEXT if i % 2 == 0 else BINARY, f"message {i}".encode()) for i in range(count)]
    ws.send_raw(b"".join(frame(op, data) for op, data in sent) + frame(CLOSE, close_payload(1000)))
    got = []
    while True:
        f = ws.recv_frame()
        if f.opcode == CLOSE:
            break
        assert f.opcode in (TEXT, BINARY), f"expected an echo or the Close, got {f}"
        op, parts = f.opcode, [f.payload]
        while not f.fin:  # the server may fragment its echo (§5.4)
            f = ws.recv_frame()
            assert f.opcode == CONT, f"§5.4: expected a continuation, got {f}"
            parts.append(f.payload)
        got.append((op, b"".join(parts)))
    assert got == sent[: len(got)], f"echoes must be an in-order prefix of the messages: {got}"
    assert f.code == 1000, f"expected Close 1000, got {f}"
    ws.expect_eof()


def test_ping_then_close(server: Server) -> None:
    """§5.5.2/§5.5.1: a Ping then a Close in one write: the Pong (sent before the server's Close) and the Close
    reply, in that order, then TCP closed."""
    ws = server.connect()
    ws.send_raw(frame(PING, b"last ping") + frame(CLOSE, close_payload(1000)))
    ws.expect_pong(b"last ping")
    ws.expect_close(1000)
    ws.expect_eof()


@pytest.mark.parametrize("mode", ["chunks", "bytes"], ids=["write-chunks", "write-bytes"])
def test_close_arriving_in_pieces(server: Server, mode: str) -> None:
    """§5.2/§5.5.1: a Close frame written in pieces (one byte per write too) is one Close: echoed, TCP closed."""
    ws = server.connect()
    ws.send_raw(frame(CLOSE, close_payload(4000, b"piecewise")), mode)
    ws.expect_close(4000)
    ws.expect_eof()


def test_server_closes_tcp_after_handshake(server: Server) -> None:
    """§7.1.1: after the Close exchange "the server MUST close the underlying TCP connection immediately": the
    server closes first, without waiting for the client to close its side."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(1000))
    ws.expect_close(1000)
    ws.expect_eof()  # fails on timeout unless the server closed TCP while our side is still open


def test_close_frame_from_server_is_well_formed(server: Server) -> None:
    """§5.5.1/§5.1: the server's Close frame is a single unmasked final frame whose body is a valid code plus
    UTF-8 (checked for every frame the suite reads) and carries no code reserved for local use (1005, 1006)."""
    ws = server.connect()
    ws.send(CLOSE, close_payload(1001, b"going away"))
    f = ws.expect_close(1001)
    assert f.code not in (1005, 1006, 1015)
    ws.expect_eof()
