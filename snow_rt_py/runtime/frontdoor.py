"""A connection's front door: the opening handshake's request, checked and answered (101, a refusal, a page).

The checks are the server's (admission.py: shutdown, caps, Origin, subprotocols, rate limit) and the handler's
``on_upgrade``; a refusal is an HTTP response, after which the connection lingers to read what the client still
sends (teardown.py), so it sees the answer instead of a reset. Plain HTTP requests get the metrics page or a file.
"""

from __future__ import annotations

import logging

from snow_rt_py.protocol import events as ev
from snow_rt_py.protocol.connection import State
from snow_rt_py.runtime import static
from snow_rt_py.runtime.connection_base import Phase
from snow_rt_py.runtime.connection_fields import ConnectionFields
from snow_rt_py.runtime.handler import Reject
from snow_rt_py.runtime.scheduler import Tag

log = logging.getLogger("snow_rt_py.connection")

_OPEN = Phase.OPEN
_CLOSING = Phase.CLOSING


class FrontDoor(ConnectionFields):
    """The handshake methods of :class:`~snow_rt_py.runtime.connection.Connection` (see the module)."""

    __slots__ = ()

    def _on_request(self, request: ev.Request) -> None:
        self._cancel_timer()
        self.path = request.target
        self.headers = request.headers
        server = self.server
        admission = server.admission
        ip = self._peer_ip()
        if server.closing:
            refusal = admission.shutting_down(ip, self.id)
            self._refuse(refusal.status, refusal.text, refusal.headers)
            return
        decision = admission.check(ip, request.headers, len(server._accepted), self.id)
        if decision is not None and not isinstance(decision, str):
            self._refuse(decision.status, decision.text, decision.headers)
            return
        try:
            verdict = server.handler.on_upgrade(request.target, request.headers)
        except Exception:
            log.exception("on_upgrade raised; answering 500", extra={"conn_id": self.id})
            verdict = Reject("internal error", status=500)
        if verdict is not None:
            admission.count("on_upgrade", ip, f"{verdict.status} {verdict.reason}", self.id)
            self._refuse(verdict.status, verdict.reason)
            return
        self.subprotocol = decision
        extensions: tuple[tuple[str, str], ...] = () if decision is None else (("Sec-WebSocket-Protocol", decision),)
        offers = request.headers.get_all("Sec-WebSocket-Extensions")
        if offers and server.options.compression != "off":
            self._deflate = server.negotiate_deflate(offers)
            if self._deflate is not None:
                self._proto.enable_deflate(self._deflate.inflater)
                extensions += (("Sec-WebSocket-Extensions", self._deflate.params.response),)
        pipelined = self._proto.accept(extensions)  # the 101 is queued first: before anything on_connect sends
        admission.opened(ip)
        self._admitted = True
        self._enter(_OPEN)
        self._actor = actor = server.scheduler.spawn(self._behave, self._crash)
        self.pid = actor.pid
        server.connection_accepted(self.as_connection())
        server.scheduler.deliver(actor, Tag.CONNECT, None)
        if server.heartbeat is not None:
            server.heartbeat.start(self.as_connection())
        if pipelined:
            self._handle(pipelined)

    def _peer_ip(self) -> str:
        address = self.remote_address
        return address[0] if address is not None else ""

    def _refuse(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._proto.reject(status, reason, headers)
        self._enter(_CLOSING)
        self._linger()

    def _on_http_request(self, request: ev.HttpRequest) -> None:
        self._cancel_timer()
        opts = self.server.options
        if opts.metrics_path is not None and request.target.partition("?")[0] == opts.metrics_path:
            self._proto.respond(*self.server.metrics_page(request.headers.get("Accept")))
        elif opts.static_dir is None:
            self._proto.reject(400, "Upgrade header must include websocket.")
        else:
            self._proto.respond(*static.lookup(opts.static_dir, opts.static_index, request.target))
        self._enter(_CLOSING)
        self._linger()

    def _handshake_expired(self) -> None:
        """The client did not complete its handshake in ``handshake_timeout``: answer 408 and close (a slowloris
        client gets an answer, not a silent drop)."""
        self._timer = None
        if self._proto.state is State.HANDSHAKE and self._transport is not None:
            self.server.admission.count("handshake_timeout", self._peer_ip(), "handshake not complete in time", self.id)
            self._proto.fail_handshake(408, "Request timeout: the opening handshake took too long.")
            self._enter(_CLOSING)
            self._linger()
