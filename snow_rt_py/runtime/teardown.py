"""How a connection ends: our Close and its deadline, failing it, the heartbeat's verdict, and closing TCP.

The server closes TCP first once the closing handshake is done (RFC 6455 §7.1.1); a connection that failed sends
its Close and EOF and waits, bounded by ``close_timeout``, for the peer's; a peer that answers no ping is dropped
at once (1011); after an HTTP error response the connection lingers, reading and dropping what the client still
sends, so the client sees the answer rather than a reset.
"""

from __future__ import annotations

from snow_rt_py.protocol.close import build_close_payload
from snow_rt_py.protocol.connection import State
from snow_rt_py.runtime.connection_base import KEEPALIVE_TIMEOUT, LINGER_BYTES, Phase
from snow_rt_py.runtime.connection_fields import ConnectionFields
from snow_rt_py.runtime.tls import close_transport

_CLOSING = Phase.CLOSING
_CLOSED = Phase.CLOSED


class Teardown(ConnectionFields):
    """The closing methods of :class:`~snow_rt_py.runtime.connection.Connection` (see the module)."""

    __slots__ = ()

    def send_heartbeat_ping(self, payload: bytes) -> None:
        """Called by the heartbeat wheel (loop thread)."""
        if self._proto.state is State.OPEN:
            self._proto.send_ping(payload)
            self._flush()

    def heartbeat_expired(self) -> None:
        """Called by the heartbeat wheel (loop thread) when a ping went unanswered: fail the connection (RFC 6455
        §7.1.7). A peer that answers no ping will not answer a Close either: send ours if the protocol still can,
        then drop TCP at once, so on_close (1011) runs now, not ``close_timeout`` later."""
        if self._enter(_CLOSING, KEEPALIVE_TIMEOUT):
            self.server.heartbeat_timeouts += 1
        if self._proto.state is State.OPEN:
            self._proto.send_close(*KEEPALIVE_TIMEOUT)
        self._drop_transport()

    def _send_close(self, payload: bytes) -> None:
        """Send our Close (validated by the caller) and arm the close deadline; after the messages held behind a
        message being compressed off the loop, if any."""
        if self._held is not None and self._hold(("close", payload)):
            return
        self._send_close_now(payload)

    def _send_close_now(self, payload: bytes) -> None:
        if self.phase is _CLOSED:
            return
        if self._proto.state is State.OPEN:  # else the peer's Close or a failure got there first: nothing to send
            self._proto.send_close_payload(payload)
            self._flush()
            self._arm_close_deadline()

    def _close_from_runtime(self, code: int, reason: str) -> bool:
        """Close from inside the runtime (reject, crash, slow consumer, server shutdown): never raises.

        Returns:
            True if this call started the close (False: the connection was already closing or ended).
        """
        if self._enter(_CLOSING, (code, reason)):
            self._call_on_loop(self._send_close, build_close_payload(code, reason))
            return True
        return False

    def _half_close(self) -> None:
        """After failing the connection: our Close is queued; send it, then EOF, and wait (bounded) for theirs."""
        self._flush()
        transport = self._transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
            self._arm_close_deadline()
        else:
            self._finish()

    def _finish(self) -> None:
        """The exchange is over: flush what is queued and close TCP (the server closes first, RFC 6455 §7.1.1)."""
        self._flush()
        self._cancel_timer()
        if self._transport is not None:
            close_transport(self._transport)  # TLS: our close_notify, not waiting for theirs

    def _linger(self) -> None:
        """After an HTTP response that ends the connection (an error, a refusal, a page): send it and our FIN, then
        read and drop what the client may still be sending -- up to LINGER_BYTES, for at most ``close_timeout`` --
        and close once it closes. Closing with its input unread would reset the connection, and the client would
        see "connection reset" instead of our answer (a 431 to a request head still being sent, say)."""
        self._flush()
        self._cancel_timer()
        transport = self._transport
        if transport is None:
            return
        if not transport.can_write_eof():  # TLS: no half-close
            close_transport(transport)
            return
        transport.write_eof()
        self._linger_left = LINGER_BYTES
        self._timer = self._loop.call_later(self.server.options.close_timeout, self._finish)

    def _drop_transport(self) -> None:
        """Write what is queued if the socket takes it now, and close TCP at once either way (loop thread)."""
        self._flush()
        self._cancel_timer()
        transport = self._transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()  # the peer is not reading: what is left would never go out
        else:
            close_transport(transport)

    def _arm_close_deadline(self) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(self.server.options.close_timeout, self._abort_transport)

    def _abort_transport(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
