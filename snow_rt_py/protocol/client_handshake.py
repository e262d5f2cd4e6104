"""The client side of the opening handshake (RFC 6455 §4.1, §4.2.2; RFC 7692 §5, §7): the request, the response.

:func:`build_request` makes the opening request: ``GET`` of the target, ``Host``, ``Upgrade: websocket``,
``Connection: Upgrade``, a fresh ``Sec-WebSocket-Key`` (16 bytes from the operating system's CSPRNG, base64),
``Sec-WebSocket-Version: 13``, then the optional ``Origin``, subprotocol offers, the permessage-deflate offer and the
caller's extra headers.

:class:`ResponseParser` buffers the response head as it arrives (any chunking; bounded) and
:func:`check_response` validates it strictly. Every problem raises :class:`ResponseError` naming what was wrong:

=============================================================  =============================================
Problem                                                        Reason (``ResponseError.reason``)
=============================================================  =============================================
bytes that do not start an HTTP/1.1 status line                ``invalid HTTP response: ...``
head longer than the bound                                     ``HTTP response head over N bytes``
a status other than 101 (``status`` is set; 3xx: ``location``)  ``HTTP 403 Forbidden instead of 101``
``Upgrade`` without the token ``websocket``                    ``missing or invalid Upgrade header: ...``
``Connection`` without the token ``upgrade``                   ``missing or invalid Connection header: ...``
``Sec-WebSocket-Accept`` missing, repeated or wrong            ``wrong Sec-WebSocket-Accept ...``
a subprotocol not offered, or several                          ``server chose subprotocol 'x', not offered``
an extension not offered, or invalid parameters (RFC 7692 §7)  ``server chose extension ...`` / ``invalid ...``
=============================================================  =============================================

permessage-deflate offers (RFC 7692 §7.1), by compression mode -- the mirror of the server's modes
(``runtime/compression.py``):

* ``"shared"``: ``permessage-deflate; server_no_context_takeover; client_no_context_takeover;
  client_max_window_bits``: no zlib state outlives a message either way.
* ``"dedicated"``: ``permessage-deflate; client_max_window_bits``: a context kept both ways where the server allows.

The agreed parameters are returned as a :class:`~snow_rt_py.protocol.deflate.DeflateParams` seen from our side
(its ``server_*`` fields describe what *we* send, its ``client_*`` fields what the peer sends), which is what the
runtime's compression state (``ConnectionDeflate``) takes, whichever end we are.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from typing import NamedTuple

from snow_rt_py.protocol.deflate import EXTENSION_NAME, MAX_WINDOW_BITS, DeflateParams, parse_extensions
from snow_rt_py.protocol.handshake import WEBSOCKET_VERSION, accept_key
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.protocol.negotiation import check_subprotocol_names

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "ParsedResponse",
    "ResponseError",
    "ResponseParser",
    "build_request",
    "check_response",
    "deflate_offer",
    "new_key",
]

DEFAULT_MAX_RESPONSE_SIZE = 64 * 1024
_ZLIB_MIN_RAW_WINDOW_BITS = 9  # see protocol/deflate.py: an agreed 8 is kept with a 512-byte window and Z_RLE
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_RESERVED_HEADERS = frozenset(
    {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"}
)


class ResponseError(Exception):
    """The server's answer to our opening request is not a valid acceptance (the peer's fault).

    Attributes:
        reason: what was wrong, for a person (e.g. ``"HTTP 403 Forbidden instead of 101"``).
        status: the HTTP status the server answered with, or None if the response was not even valid HTTP.
        location: the ``Location`` header of a 3xx answer (a redirect), else None.
    """

    def __init__(self, reason: str, status: int | None = None, location: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.location = location


class ParsedResponse(NamedTuple):
    """A complete response head.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: the response headers.
        rest: the bytes that arrived behind the head (the server's first frames).
    """

    status: int
    reason: str
    headers: Headers
    rest: bytes


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 bytes from the operating system's CSPRNG, base64 (RFC 6455 §4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def deflate_offer(mode: str) -> str | None:
    """The ``Sec-WebSocket-Extensions`` offer of a compression mode (``"off"``: None); see the module docstring."""
    if mode == "off":
        return None
    if mode == "shared":
        return f"{EXTENSION_NAME}; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"
    if mode == "dedicated":
        return f"{EXTENSION_NAME}; client_max_window_bits"
    raise ValueError(f"compression must be 'off', 'shared' or 'dedicated', got {mode!r}")


def build_request(
    host: str,
    target: str,
    key: str,
    *,
    origin: str | None = None,
    subprotocols: Sequence[str] = (),
    extensions: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The opening request (RFC 6455 §4.1).

    Args:
        host: the ``Host`` value (``host`` or ``host:port`` when the port is not the scheme's default).
        target: the request target (path and query, starting with ``/``).
        key: the ``Sec-WebSocket-Key`` (:func:`new_key`).
        origin: the ``Origin`` header, or None.
        subprotocols: the subprotocols offered, in our order of preference.
        extensions: the ``Sec-WebSocket-Extensions`` offer (:func:`deflate_offer`), or None.
        headers: extra ``(name, value)`` headers.

    Raises:
        ValueError: a subprotocol is not a token, a header name or value is invalid, or an extra header would
            replace one the handshake itself needs (Host, Upgrade, Connection, Sec-WebSocket-Key/-Version/-Extensions).
    """
    check_subprotocol_names(subprotocols)
    if not target.startswith("/") or not _FIELD_VALUE.fullmatch(target) or " " in target:
        raise ValueError(f"invalid request target {target!r}")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {WEBSOCKET_VERSION}",
    ]
    if origin is not None:
        lines.append(f"Origin: {_value('Origin', origin)}")
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    for name, value in headers:
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name} is set by the handshake itself")
        lines.append(f"{name}: {_value(name, value)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _value(name: str, value: str) -> str:
    if not isinstance(value, str) or not _FIELD_VALUE.fullmatch(value):
        raise ValueError(f"invalid value for header {name}: {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"invalid value for header {name}: {value!r} (not Latin-1)") from None
    return value


class ResponseParser:
    """Incremental, bounded parser of the response head: feed bytes as they arrive.

    Args:
        max_size: the most bytes the status line and headers may take.
    """

    __slots__ = ("_buf", "_max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> None:
        self._buf = bytearray()
        self._max_size = max_size

    def feed(self, data: bytes | bytearray | memoryview) -> ParsedResponse | None:
        """Add ``data``; return the response once its head is complete, else None.

        Raises:
            ResponseError: the bytes are not an HTTP response (found as soon as the first bytes show it), or the
                head is over ``max_size``.
        """
        buf = self._buf
        buf += data
        if not _could_be_http(bytes(buf[:9])):
            raise ResponseError(f"invalid HTTP response: {bytes(buf[:40])!r}")
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self._max_size:
                raise ResponseError(f"HTTP response head over {self._max_size} bytes")
            return None
        if end + 4 > self._max_size:
            raise ResponseError(f"HTTP response head over {self._max_size} bytes")
        head = bytes(buf[:end])
        rest = bytes(buf[end + 4 :])
        self._buf = bytearray()
        lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ResponseError(f"invalid HTTP response: malformed status line {lines[0][:80]!r}")
        headers = Headers()
        for line in lines[1:]:
            header = _HEADER_LINE.fullmatch(line)
            if header is None:
                raise ResponseError(f"invalid HTTP response: malformed header line {line[:80]!r}")
            headers.add(header.group(1).decode("ascii"), header.group(2).decode("latin-1"))
        reason = (match.group(2) or b"").decode("latin-1")
        return ParsedResponse(int(match.group(1)), reason, headers, rest)


def _could_be_http(start: bytes) -> bool:
    """Whether ``start`` (the first bytes, up to 9) can begin ``HTTP/1.x NNN``."""
    expected = b"HTTP/1."
    n = min(len(start), len(expected))
    if start[:n] != expected[:n]:
        return False
    return len(start) < 9 or (start[7:8].isdigit() and start[8:9] == b" ")


def check_response(
    response: ParsedResponse, key: str, subprotocols: Sequence[str], compression: str
) -> tuple[str | None, DeflateParams | None]:
    """Validate a response to our request (RFC 6455 §4.2.2 step 5 / §4.1 "the client MUST validate").

    Args:
        response: the parsed head.
        key: the ``Sec-WebSocket-Key`` we sent.
        subprotocols: the subprotocols we offered.
        compression: the compression mode we offered with (``"off"``, ``"shared"``, ``"dedicated"``).

    Returns:
        ``(subprotocol, deflate)``: the subprotocol the server chose (None: none), and the permessage-deflate
        parameters agreed, seen from our side (None: no compression).

    Raises:
        ResponseError: naming what was wrong (see the module docstring).
    """
    status, headers = response.status, response.headers
    if status != 101:
        location = headers.get("Location") if 300 <= status < 400 else None
        phrase = f" {response.reason}" if response.reason else ""
        raise ResponseError(f"HTTP {status}{phrase} instead of 101", status, location)
    if not _has_token(headers, "Upgrade", "websocket"):
        raise ResponseError(f"missing or invalid Upgrade header: {headers.get('Upgrade')!r}", status)
    if not _has_token(headers, "Connection", "upgrade"):
        raise ResponseError(f"missing or invalid Connection header: {headers.get('Connection')!r}", status)
    accepts = headers.get_all("Sec-WebSocket-Accept")
    if len(accepts) != 1 or accepts[0].strip() != accept_key(key):
        got = "missing" if not accepts else repr(", ".join(accepts))
        raise ResponseError(f"wrong Sec-WebSocket-Accept ({got})", status)
    return _check_subprotocol(headers, subprotocols), _check_extensions(headers, compression)


def _check_subprotocol(headers: Headers, offered: Sequence[str]) -> str | None:
    values = headers.get_all("Sec-WebSocket-Protocol")
    if not values:
        return None
    chosen = [item.strip(" \t") for value in values for item in value.split(",")]
    if len(chosen) != 1:
        raise ResponseError(f"server chose several subprotocols: {', '.join(chosen)!r}", 101)
    if chosen[0] not in offered:
        raise ResponseError(f"server chose subprotocol {chosen[0]!r}, not offered", 101)
    return chosen[0]


def _check_extensions(headers: Headers, compression: str) -> DeflateParams | None:
    values = headers.get_all("Sec-WebSocket-Extensions")
    if not values:
        return None
    elements = parse_extensions(values)
    if not elements:
        return None
    if any(element is None for element in elements):
        raise ResponseError(f"invalid Sec-WebSocket-Extensions header: {', '.join(values)!r}", 101)
    names = [element[0] for element in elements if element is not None]
    if compression == "off" or names[0].lower() != EXTENSION_NAME:
        raise ResponseError(f"server chose extension {names[0]!r}, not offered", 101)
    if len(elements) > 1:
        raise ResponseError(f"server chose extensions {', '.join(names)!r}; only {EXTENSION_NAME} was offered", 101)
    first = elements[0]
    assert first is not None
    return _deflate_params(first[1], compression)


def _deflate_params(params: list[tuple[str, str | None]], compression: str) -> DeflateParams:
    """The agreed parameters of a permessage-deflate response (RFC 7692 §7.1), seen from our side."""
    seen: dict[str, str | None] = {}
    for name, value in params:
        if name in seen:
            raise ResponseError(f"invalid permessage-deflate response: {name} repeated", 101)
        seen[name] = value
    for name, value in seen.items():
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise ResponseError(f"invalid permessage-deflate response: {name} takes no value", 101)
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            # §7.1.2: a response's window bits always has a value, 8-15 (we offered client_max_window_bits
            # without one: the server may set a limit; server_max_window_bits limits the server's own window).
            if value is None or _WINDOW_BITS.fullmatch(value) is None:
                raise ResponseError(f"invalid permessage-deflate response: {name}={value}", 101)
        else:
            raise ResponseError(f"invalid permessage-deflate response: unknown parameter {name}", 101)
    server_nct = "server_no_context_takeover" in seen
    if compression == "shared" and not server_nct:  # §7.1.1.1: we asked for it; accepting the offer includes it
        raise ResponseError("invalid permessage-deflate response: server_no_context_takeover missing", 101)
    ours_nct = compression == "shared" or "client_no_context_takeover" in seen
    ours_bits = int(seen["client_max_window_bits"] or MAX_WINDOW_BITS) if "client_max_window_bits" in seen else 15
    peer_bits = int(seen["server_max_window_bits"] or MAX_WINDOW_BITS) if "server_max_window_bits" in seen else 15
    return DeflateParams(
        server_no_context_takeover=ours_nct,
        client_no_context_takeover=server_nct,
        server_window_bits=max(ours_bits, _ZLIB_MIN_RAW_WINDOW_BITS),
        rle=ours_bits < _ZLIB_MIN_RAW_WINDOW_BITS,
        client_window_bits=peer_bits,
        response="",
    )


def _has_token(headers: Headers, name: str, token: str) -> bool:
    return any(item.strip(" \t").lower() == token for value in headers.get_all(name) for item in value.split(","))
