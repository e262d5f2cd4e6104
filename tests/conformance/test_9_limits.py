"""Category 9 (limits): message size limits (RFC 6455 §10.4, §7.4.1 code 1009).

"Implementations SHOULD impose implementation-specific limits on frame sizes and the total message size after
reassembly from multiple frames" (§10.4); a message over the limit is refused with 1009, "message that is too
big for it to process" (§7.4.1). Every target is started with the same limit (``server``: 64 KiB) or with its
default (``default_server``: expected 16 MiB); a message of exactly the limit is accepted, one byte more is not.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Server
from tests.conformance.rawws import BINARY, CONT, PING, TEXT, frame, frame_header

pytestmark = pytest.mark.timeout(30)

KINDS = [TEXT, BINARY]
KIND_IDS = ["text", "binary"]


def body(opcode: int, n: int) -> bytes:
    unit = "αβγ-abc-€-".encode() if opcode == TEXT else bytes(range(256))
    data = (unit * (n // len(unit) + 1))[:n]
    if opcode == TEXT:  # keep it valid UTF-8 at the cut: pad the tail with ASCII
        while True:
            try:
                data.decode()
                break
            except UnicodeDecodeError as exc:
                data = data[: exc.start] + b"." * (n - exc.start)
    return data


def fragmented(opcode: int, data: bytes, count: int) -> bytes:
    size = -(-len(data) // count)
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(frame(opcode if i == 0 else CONT, p, fin=i == len(parts) - 1) for i, p in enumerate(parts))


@pytest.mark.parametrize("opcode", KINDS, ids=KIND_IDS)
def test_message_at_limit_echoed(server: Server, opcode: int) -> None:
    """§10.4: a single-frame message of exactly the configured limit is within it: echoed whole."""
    ws = server.connect()
    data = body(opcode, server.max_size)
    ws.send(opcode, data)
    ws.expect_message(opcode, data)
    ws.close_handshake()


@pytest.mark.parametrize("opcode", KINDS, ids=KIND_IDS)
def test_message_one_byte_over_limit_fails_1009(server: Server, opcode: int) -> None:
    """§10.4/§7.4.1: a single-frame message one byte over the limit fails with Close 1009, then TCP closed; no
    echo, and a Ping written after it is not answered."""
    ws = server.connect()
    ws.send_tolerant(frame(opcode, body(opcode, server.max_size + 1)) + frame(PING, b"after"))
    ws.expect_fail(1009)


@pytest.mark.parametrize("opcode", KINDS, ids=KIND_IDS)
def test_over_limit_refused_from_header(server: Server, opcode: int) -> None:
    """§10.4/§5.2: the declared 64-bit length already says the frame is over the limit, so the server refuses it
    with 1009 as soon as the header arrives -- without waiting for (or buffering) the payload, which the suite
    never sends."""
    ws = server.connect()
    ws.send_raw(frame_header(opcode, server.max_size + 1) + b"\x01\x02\x03\x04")
    ws.expect_fail(1009)


@pytest.mark.parametrize("count", [2, 16, 1024], ids=["2-frames", "16-frames", "1024-frames"])
@pytest.mark.parametrize("opcode", KINDS, ids=KIND_IDS)
def test_fragmented_message_at_limit_echoed(server: Server, opcode: int, count: int) -> None:
    """§10.4/§5.4: the limit applies to "the total message size after reassembly": fragments adding up to
    exactly the limit are accepted and the message echoed whole."""
    ws = server.connect()
    data = body(opcode, server.max_size)
    ws.send_raw(fragmented(opcode, data, count))
    ws.expect_message(opcode, data)
    ws.close_handshake()


@pytest.mark.parametrize("count", [2, 16, 1024], ids=["2-frames", "16-frames", "1024-frames"])
@pytest.mark.parametrize("opcode", KINDS, ids=KIND_IDS)
def test_fragmented_message_one_byte_over_fails_1009(server: Server, opcode: int, count: int) -> None:
    """§10.4/§7.4.1: fragments, each well under the limit, adding up to one byte over it: the reassembled message
    is too big: Close 1009, nothing echoed, TCP closed."""
    ws = server.connect()
    ws.send_tolerant(fragmented(opcode, body(opcode, server.max_size + 1), count))
    ws.expect_fail(1009)


@pytest.mark.parametrize("opcode", KINDS, ids=KIND_IDS)
def test_continuation_over_limit_refused_from_header(server: Server, opcode: int) -> None:
    """§10.4/§5.4: after a 1000-byte first fragment, a continuation header declaring the rest of the limit plus
    one byte is refused with 1009 as soon as its header arrives (the suite never sends its payload)."""
    ws = server.connect()
    first = body(opcode, 1000)
    ws.send(opcode, first, fin=False)
    ws.send_raw(frame_header(CONT, server.max_size - 1000 + 1) + b"\x01\x02\x03\x04")
    ws.expect_fail(1009)


def test_limit_is_per_message(server: Server) -> None:
    """§10.4: the limit is per message, not per connection: two consecutive messages of the full limit are both
    echoed."""
    ws = server.connect()
    data = body(BINARY, server.max_size)
    for _ in range(2):
        ws.send(BINARY, data)
        ws.expect_message(BINARY, data)
    ws.close_handshake()


@pytest.mark.skip_target(
    "websockets",
    reason="websockets bounds every frame read mid-message by the message's remaining budget (max_size minus the "
    "bytes so far), so a 125-byte Ping arriving when less than 125 bytes remain fails with 1009; RFC 6455 §5.4 "
    "does not make control frames part of the message",
)
def test_control_frames_do_not_count_toward_limit(server: Server) -> None:
    """§5.4/§10.4: Pings between the fragments of a message of exactly the limit are not part of the message:
    each is answered and the message is still accepted (the second Ping arrives when 1 byte of budget is left)."""
    ws = server.connect()
    data = body(BINARY, server.max_size)
    half = len(data) // 2
    ws.send_raw(
        frame(BINARY, data[:half], fin=False)
        + frame(PING, b"x" * 125)
        + frame(CONT, data[half:-1], fin=False)
        + frame(PING, b"y" * 125)
        + frame(CONT, data[-1:])
    )
    ws.expect_interleaved([(BINARY, data)], [b"x" * 125, b"y" * 125])
    ws.close_handshake()


@pytest.mark.timeout(60)
def test_default_limit_16mib_at_limit_echoed(default_server: Server) -> None:
    """§10.4: a server started without a limit option applies its default (16 MiB; the websockets target is
    given 16 MiB explicitly since its own default is 1 MiB): a 16 MiB binary message is echoed whole."""
    ws = default_server.connect()
    data = body(BINARY, default_server.max_size)
    ws.send(BINARY, data)
    ws.expect_message(BINARY, data)
    ws.close_handshake()


@pytest.mark.timeout(60)
def test_default_limit_16mib_one_byte_over_fails_1009(default_server: Server) -> None:
    """§10.4/§7.4.1: with the default 16 MiB limit, a message of 16 MiB + 1 bytes (sent in full; the server may
    refuse it from the header and stop reading) fails with Close 1009, then TCP closed."""
    ws = default_server.connect()
    ws.send_tolerant(frame(BINARY, body(BINARY, default_server.max_size + 1)))
    ws.expect_fail(1009)
