"""Errors of the protocol layer, split by whose fault they are.

* :class:`ProtocolError` -- the **peer** broke RFC 6455 after the handshake. It carries the close code (and a
  short reason) that the connection must be failed with (RFC 6455 §7.1.7).
* :class:`HandshakeError` -- the **peer** sent an HTTP request we cannot upgrade. It carries the HTTP status,
  a short plain-text reason and any extra response headers (e.g. ``Sec-WebSocket-Version: 13`` with 426).
* :class:`UsageError` -- **our own caller** misused the API (sending on a closed connection, an invalid close
  code, text that is not ``str``...). Never caused by bytes from the network.

The sans-I/O connection never lets a peer error escape as an exception from ``receive_data``: it turns it into
a :class:`~snow_rt_py.protocol.events.ProtocolFailure` or
:class:`~snow_rt_py.protocol.events.HandshakeFailure` event. These exception classes are used internally and by
the lower-level helpers (``parse_close_payload``, ``HandshakeParser`` ...).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer violated RFC 6455; fail the connection with ``close_code``.

    Args:
        close_code: the RFC 6455 §7.4.1 code to send in our Close frame (1002, 1007, 1009...).
        reason: a short human-readable reason (ASCII, at most 123 bytes) to put in the Close frame.
    """

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(f"{close_code} {reason}")
        self.close_code = close_code
        self.reason = reason


class HandshakeError(Exception):
    """The peer's opening handshake is invalid; answer with ``status`` and close the TCP connection.

    Args:
        status: the HTTP status code to answer with (400, 426, 431, 405...).
        reason: a short plain-text reason, sent as the response body.
        headers: extra response headers, e.g. ``[("Sec-WebSocket-Version", "13")]`` for 426.
    """

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers


class UsageError(Exception):
    """Our own caller used the protocol object wrongly (never the peer's fault)."""
