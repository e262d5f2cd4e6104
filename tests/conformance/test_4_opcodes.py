"""Category 4: reserved opcodes (RFC 6455 §5.2).

Opcodes 0x3-0x7 are reserved for further non-control frames and 0xB-0xF for further control frames. "If an
unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_" (§5.2) -- Close 1002
(§7.4.1) then TCP closed, and nothing after the bad frame is processed (§7.1.7).
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Server
from tests.conformance.rawws import BINARY, CONT, PING, TEXT, frame

pytestmark = pytest.mark.timeout(30)

RESERVED = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]
IDS = [f"op{op:#x}" for op in RESERVED]


@pytest.mark.parametrize("opcode", RESERVED, ids=IDS)
def test_reserved_opcode_empty_fails_1002(server: Server, opcode: int) -> None:
    """§5.2: a frame with a reserved opcode and no payload fails the connection with 1002; a Ping sent after it
    is not answered."""
    ws = server.connect()
    ws.send_raw(frame(opcode) + frame(PING, b"after"))
    ws.expect_fail(1002)


@pytest.mark.parametrize("opcode", RESERVED, ids=IDS)
def test_reserved_opcode_with_payload_fails_1002(server: Server, opcode: int) -> None:
    """§5.2: a frame with a reserved opcode and a payload fails the connection with 1002 (nothing echoed)."""
    ws = server.connect()
    ws.send_raw(frame(opcode, b"reserved opcode payload") + frame(TEXT, b"after"))
    ws.expect_fail(1002)


@pytest.mark.parametrize("opcode", RESERVED, ids=IDS)
def test_reserved_opcode_after_valid_message(server: Server, opcode: int) -> None:
    """§5.2/§7.1.7: a valid text message is echoed; a reserved-opcode frame after it (the suite waits for the
    echo first: an echo racing the failure is not required) fails with Close 1002 and TCP closed; a Ping written
    after the bad frame is not answered."""
    ws = server.connect()
    ws.send(TEXT, b"valid first")
    ws.expect_message(TEXT, b"valid first")
    ws.send_raw(frame(opcode, b"bad") + frame(PING, b"after"))
    ws.expect_fail(1002)


@pytest.mark.parametrize("opcode", [0x3, 0xB], ids=["op0x3", "op0xb"])
def test_reserved_opcode_inside_fragmented_message(server: Server, opcode: int) -> None:
    """§5.2/§5.4: a reserved opcode between the fragments of a message fails with 1002; the message is never
    completed nor echoed."""
    ws = server.connect()
    ws.send_raw(frame(BINARY, b"part1", fin=False) + frame(opcode, b"x") + frame(CONT, b"part2"))
    ws.expect_fail(1002)
