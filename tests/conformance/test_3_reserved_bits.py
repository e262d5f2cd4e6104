"""Category 3: reserved bits (RFC 6455 §5.2).

"RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated that defines meanings for non-zero values. If a
nonzero value is received and none of the negotiated extensions defines the meaning of such a nonzero value,
the receiving endpoint MUST _Fail the WebSocket Connection_." No extension is negotiated here, so every RSV
combination fails with 1002 (§7.4.1 protocol error), and nothing sent after the bad frame is processed (§7.1.7).
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Server
from tests.conformance.rawws import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, frame

pytestmark = pytest.mark.timeout(30)

# (RSV1, RSV2, RSV3) as the 3-bit field: 4 = RSV1, 2 = RSV2, 1 = RSV3.
RSV_VALUES = [4, 2, 1, 6, 5, 3, 7]
RSV_IDS = ["rsv1", "rsv2", "rsv3", "rsv1+2", "rsv1+3", "rsv2+3", "rsv1+2+3"]

BAD_FRAMES = {
    "text": (TEXT, b"reserved bits"),
    "binary": (BINARY, b"\x00\xffreserved"),
    "ping": (PING, b"ping"),
    "pong": (PONG, b"pong"),
    "close": (CLOSE, close_payload(1000)),
}


@pytest.mark.parametrize("rsv", RSV_VALUES, ids=RSV_IDS)
@pytest.mark.parametrize("kind", ["text", "binary", "ping", "close"])
def test_reserved_bits_fail_1002(server: Server, kind: str, rsv: int) -> None:
    """§5.2: a frame (text, binary, ping or close) with non-zero RSV bits and no extension negotiated fails the
    connection with Close 1002. A valid message before it is echoed first (the suite waits for that echo, since
    an echo racing the failure is not required); the valid message and Ping sent after the bad frame in the
    same write are not answered (§7.1.7: no further data is processed), then TCP is closed."""
    ws = server.connect()
    opcode, body = BAD_FRAMES[kind]
    ws.send(TEXT, b"before")
    ws.expect_message(TEXT, b"before")
    ws.send_raw(frame(opcode, body, rsv=rsv) + frame(TEXT, b"after") + frame(PING, b"after"))
    ws.expect_fail(1002)


def test_reserved_bit_on_unsolicited_pong_fails_1002(server: Server) -> None:
    """§5.2: RSV bits on a Pong (a frame the server would otherwise ignore) still fail the connection: 1002."""
    ws = server.connect()
    opcode, body = BAD_FRAMES["pong"]
    ws.send_raw(frame(opcode, body, rsv=4) + frame(TEXT, b"after"))
    ws.expect_fail(1002)


@pytest.mark.parametrize("rsv", [4, 2, 1], ids=["rsv1", "rsv2", "rsv3"])
def test_reserved_bits_on_continuation_fail_1002(server: Server, rsv: int) -> None:
    """§5.2: RSV bits on a continuation frame of a fragmented message fail the connection with 1002; the
    unfinished message is never delivered (no echo)."""
    ws = server.connect()
    ws.send_raw(frame(TEXT, b"frag-1 ", fin=False) + frame(CONT, b"frag-2", rsv=rsv))
    ws.expect_fail(1002)


def test_reserved_bit_on_empty_text_frame_fails_1002(server: Server) -> None:
    """§5.2: the rule does not depend on the payload: an empty text frame with RSV1 set fails with 1002."""
    ws = server.connect()
    ws.send(TEXT, b"", rsv=4)
    ws.expect_fail(1002)
