"""The server side of the opening handshake (RFC 6455 §4.2, HTTP/1.1 syntax from RFC 9112).

:class:`RequestParser` buffers the request head as it arrives (in any chunking), bounded by ``max_size``, and
validates it. It returns a :class:`ParsedRequest` (a WebSocket opening handshake) or a :class:`PlainRequest` (a
plain HTTP GET or HEAD, see below). Every invalid request raises :class:`HandshakeError` carrying the HTTP status
to answer with:

=========================================================  ======  ============================================
Problem                                                    Status  Extra response header
=========================================================  ======  ============================================
request line + headers longer than ``max_size``            431
malformed request line, HTTP version below 1.1, or a       400
request-target neither origin- nor absolute-form
malformed header line (no colon, space before the          400
colon, obs-fold, control characters)
method other than GET (RFC 6455 §4.1 requires GET),        405     ``Allow: GET``
except a plain HEAD (no ``Upgrade``, see below)
no ``Host``, or several (RFC 9112 §3.2)                    400
a body (``Transfer-Encoding``, ``Content-Length`` not 0)   400
``Upgrade`` without the token ``websocket``                400
``Connection`` without the token ``upgrade``               400
``Sec-WebSocket-Key`` missing, repeated, or not the        400
base64 encoding of exactly 16 bytes
``Sec-WebSocket-Version`` missing or not exactly ``13``    426     ``Sec-WebSocket-Version: 13``
=========================================================  ======  ============================================

Checks run in the table's order and the first failure wins. The request line is checked as soon as it is
complete (garbage such as a TLS ClientHello on a plain port fails at once, not at ``max_size``); the rest
once the empty line ending the head has arrived. Either way the outcome depends only on the bytes, never on
how they were chunked.

405 rather than 400 for another method, since the resource exists but only for GET (RFC 9110 §15.5.6). A
missing version gets 426 rather than 400 so that the response tells the client which version to speak
(RFC 6455 §4.4). Bare ``LF`` line endings are accepted as well as ``CRLF`` (RFC 9112 §2.2).

A well-formed GET or HEAD that has no ``Upgrade`` header at all (passing the checks above it in the table) is a
plain HTTP request, not a failed handshake: the parser returns it as a :class:`PlainRequest`, and
:class:`~snow_rt_py.protocol.connection.ServerProtocol` hands it to its caller (an
:class:`~snow_rt_py.protocol.events.HttpRequest` event) to serve a page, or to refuse it (the runtime answers 400
"Upgrade header must include websocket." when it serves no files).

The responses are built by :func:`build_response_101`, :func:`build_error_response` and
:func:`build_response` (which leaves the body out for a HEAD).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import NamedTuple

from snow_rt_py.protocol.errors import HandshakeError, UsageError
from snow_rt_py.protocol.headers import Headers

__all__ = [
    "DEFAULT_MAX_HANDSHAKE_SIZE",
    "WEBSOCKET_GUID",
    "ParsedRequest",
    "PlainRequest",
    "RequestParser",
    "accept_key",
    "build_error_response",
    "build_response",
    "build_response_101",
    "parse_request",
]

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
WEBSOCKET_VERSION = "13"  # RFC 6455 §4.1, §11.6
DEFAULT_MAX_HANDSHAKE_SIZE = 16 * 1024

# The head is matched as text decoded from Latin-1 (each byte one character, so the classes below are byte ranges).
_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"  # RFC 9110 §5.6.2
_REQUEST_LINE = re.compile("(" + _TCHAR + r"+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")  # RFC 9112 §3
# RFC 9112 §5: no whitespace before the colon; optional whitespace around the value; the value holds visible
# ASCII, spaces, tabs and obs-text, never a control character.
_HEADER_LINE = re.compile("(" + _TCHAR + r"+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
# The same rule for a whole header block, matched in one go when every line is well formed (the common case; a
# block that does not match is parsed line by line to say which rule it breaks). The value is written as words
# between runs of whitespace and each line is atomic, so a match never backtracks and takes linear time.
_VALUE = r"((?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?)"
_HEADER_FIELDS = re.compile("(" + _TCHAR + r"+):[ \t]*" + _VALUE + r"[ \t]*\r?\n")
_HEADER_BLOCK = re.compile("(?>" + _TCHAR + r"+:[ \t]*" + _VALUE.replace("((", "(?:(", 1) + r"[ \t]*\r?\n)*")
_TOKEN = re.compile(_TCHAR + "+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class ParsedRequest(NamedTuple):
    """A valid opening handshake request.

    Attributes:
        target: the raw request-target (e.g. ``"/chat?room=1"``).
        headers: the request headers.
        key: the client's ``Sec-WebSocket-Key``, for :func:`build_response_101`.
        rest: the bytes received after the request head (the client's first frames, if it pipelined them).
    """

    target: str
    headers: Headers
    key: str
    rest: bytes


class PlainRequest(NamedTuple):
    """A well-formed plain HTTP request: a GET or HEAD with no ``Upgrade`` header, not a WebSocket handshake.

    Attributes:
        method: ``"GET"`` or ``"HEAD"``.
        target: the raw request-target.
        headers: the request headers.
    """

    method: str
    target: str
    headers: Headers


_PLAIN_METHODS = ("GET", "HEAD")
_NO_UPGRADE = "Upgrade header must include websocket."


def accept_key(key: str) -> str:
    """Compute ``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2).

    Args:
        key: the ``Sec-WebSocket-Key`` header value.

    Returns:
        base64(SHA-1(key + GUID)).
    """
    return _accept_bytes(key).decode("ascii")


def _accept_bytes(key: str) -> bytes:
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest)


class RequestParser:
    """Incremental, bounded parser of the opening handshake request.

    Feed it bytes as they arrive; it returns the parsed request once the empty line ending the head has
    arrived. It never holds more than ``max_size`` bytes of head (plus the last chunk fed).

    Args:
        max_size: the most bytes the request line and headers (with their line endings) may take.
    """

    __slots__ = ("_buffer", "_done", "_line_checked", "_max_size", "_scanned")

    def __init__(self, max_size: int = DEFAULT_MAX_HANDSHAKE_SIZE) -> None:
        self._max_size = max_size
        self._buffer = bytearray()
        self._scanned = 0  # bytes already searched for the end of the head
        self._line_checked = False  # the request line was seen and is valid
        self._done = False

    def feed(self, data: bytes | bytearray | memoryview) -> ParsedRequest | PlainRequest | None:
        """Add received bytes.

        Args:
            data: the next bytes from the client.

        Returns:
            Once the head is complete, the opening handshake (:class:`ParsedRequest`) or a plain HTTP GET or
            HEAD (:class:`PlainRequest`; what follows its head is dropped); else None (feed more).

        Raises:
            HandshakeError: the request is invalid (see the module docstring for each status). The parser
                must not be fed again.
            UsageError: the request was already returned or rejected.
        """
        if self._done:
            raise UsageError("the request head was already parsed")
        if not self._scanned and not self._buffer and type(data) is bytes:
            # The usual case: the whole head in the first read. Parsed from the bytes as they are; the same checks
            # in the same order as below (the request line first), so the outcome is the same.
            end = _head_end(data, 0)
            if 0 <= end <= self._max_size:
                self._done = True
                return self._request(data[:end], data[end:])
        buf = self._buffer
        buf += data
        if not self._line_checked:
            # Reject garbage (say, TLS on a plain port) at its first line rather than at max_size. Only a
            # line within the limit is checked, so the outcome is the same in any chunking.
            eol = buf.find(b"\n", self._scanned, self._max_size)  # no LF before _scanned, or it was checked
            if eol >= 0:
                self._line_checked = True
                try:
                    _parse_request_line(buf[: eol - 1 if buf[eol - 1 : eol] == b"\r" else eol].decode("latin-1"))
                except HandshakeError:
                    self._done = True
                    self._buffer = bytearray()
                    raise
        # The head ends with an empty line; start 2 bytes back in case the terminator straddles two feeds.
        end = _head_end(buf, max(0, self._scanned - 2))
        if end < 0:
            self._scanned = len(buf)
            if len(buf) > self._max_size:
                self._fail()
            return None
        if end > self._max_size:
            self._fail()
        self._done = True
        head = bytes(buf[:end])
        rest = bytes(buf[end:])
        self._buffer = bytearray()
        return self._request(head, rest)

    @staticmethod
    def _request(head: bytes, rest: bytes) -> ParsedRequest | PlainRequest:
        request = _parse_head(head)
        if isinstance(request, PlainRequest):
            return request
        target, headers, key = request
        return ParsedRequest(target, headers, key, rest)

    def _fail(self) -> None:
        self._done = True
        self._buffer = bytearray()
        raise HandshakeError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers too large.")


def parse_request(head: bytes) -> tuple[str, Headers, str]:
    """Parse and validate a complete request head (request line, headers and the empty line).

    Args:
        head: the head, line endings included.

    Returns:
        ``(target, headers, key)``.

    Raises:
        HandshakeError: the request is not a valid WebSocket opening handshake; a plain GET (no ``Upgrade``
            header) is one with status 400, a plain HEAD with 405. (:class:`RequestParser` returns those as a
            :class:`PlainRequest` instead.)
    """
    request = _parse_head(head)
    if isinstance(request, PlainRequest):
        raise _bad_request(_NO_UPGRADE) if request.method == "GET" else _method_not_allowed()
    return request


def _head_end(buf: bytes | bytearray, start: int) -> int:
    """Where the head in ``buf`` ends (just after the empty line; the first one from ``start``), or -1."""
    crlf = buf.find(b"\n\r\n", start)
    end = -1 if crlf < 0 else crlf + 3
    lf = buf.find(b"\n\n", start, None if crlf < 0 else crlf + 2)
    return lf + 2 if lf >= 0 else end


def _parse_head(head: bytes) -> tuple[str, Headers, str] | PlainRequest:
    """:func:`parse_request`, except that a well-formed plain GET or HEAD is returned as a PlainRequest."""
    text = head.decode("latin-1")
    eol = text.find("\n")
    if eol < 0:
        raise _bad_request("Malformed request line.")
    method, target = _parse_request_line(text[: eol - 1 if text[eol - 1 : eol] == "\r" else eol])
    # The head ends with an empty line: the header block lies between the request line and it.
    block = text[eol + 1 : len(text) - (2 if text.endswith("\n\r\n") else 1)] if text.endswith("\n") else None
    if block is not None and _HEADER_BLOCK.fullmatch(block) is not None:
        items: list[tuple[str, str]] = _HEADER_FIELDS.findall(block)
    else:
        items = _header_items(text)
    by_name: dict[str, list[str]] = {}  # lower-case name -> values: every check below is one lookup
    for name, value in items:
        values = by_name.get(name.lower())
        if values is None:
            by_name[name.lower()] = [value]
        else:
            values.append(value)
    headers = Headers(items)

    plain = "upgrade" not in by_name and method in _PLAIN_METHODS
    if method != "GET" and not plain:
        raise _method_not_allowed()
    if len(by_name.get("host", ())) != 1:
        raise _bad_request("Missing or repeated Host header.")
    length = by_name.get("content-length")
    if "transfer-encoding" in by_name or (length is not None and ", ".join(length) != "0"):
        raise _bad_request("A WebSocket handshake request has no body.")
    if plain:  # not a handshake: the caller may answer it (e.g. serve a page)
        return PlainRequest(method, target, headers)
    if not _has_token(by_name.get("upgrade", ()), "websocket"):
        raise _bad_request(_NO_UPGRADE)
    if not _has_token(by_name.get("connection", ()), "upgrade"):
        raise _bad_request("Connection header must include upgrade.")
    keys = by_name.get("sec-websocket-key", ())
    if len(keys) != 1 or not _is_valid_key(keys[0]):
        raise _bad_request("Missing or invalid Sec-WebSocket-Key header.")
    if by_name.get("sec-websocket-version") != [WEBSOCKET_VERSION]:
        raise HandshakeError(
            HTTPStatus.UPGRADE_REQUIRED,
            "Unsupported WebSocket version.",
            (("Sec-WebSocket-Version", WEBSOCKET_VERSION),),
        )
    return target, headers, keys[0]


def _header_items(text: str) -> list[tuple[str, str]]:
    """The header lines of the head ``text`` one by one: the first malformed one raises its 400."""
    # The head ends with an empty line, so the split ends with two empty items; the first is the request line.
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")[1:-2]]
    items = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            raise _bad_request("Obsolete line folding is not allowed.")
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            raise _bad_request("Malformed header line.")
        items.append((match.group(1), match.group(2)))
    return items


def _parse_request_line(line: str) -> tuple[str, str]:
    """Check the request line (without its line ending); return the method and the request-target."""
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise _bad_request("Malformed request line.")
    method, target, major, minor = match.groups()
    if (int(major), int(minor)) < (1, 1):
        raise _bad_request("HTTP/1.1 or later required.")
    # origin-form or absolute-form (RFC 9112 §3.2); a GET has no authority-form or asterisk-form.
    if not (target.startswith("/") or "://" in target):
        raise _bad_request("Invalid request target.")
    return method, target


def _bad_request(reason: str) -> HandshakeError:
    return HandshakeError(HTTPStatus.BAD_REQUEST, reason)


def _method_not_allowed() -> HandshakeError:
    return HandshakeError(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed.", (("Allow", "GET"),))


def _has_token(values: Sequence[str], token: str) -> bool:
    """Whether the values of a comma-separated token list header (RFC 9110 §5.6.1) hold ``token``, ignoring case."""
    return any(item.strip(" \t").lower() == token for value in values for item in value.split(","))


def _is_valid_key(key: str) -> bool:
    """RFC 6455 §4.1: the key is the base64 encoding of a 16-byte nonce."""
    try:
        return len(binascii.a2b_base64(key.encode("ascii"), strict_mode=True)) == 16
    except (UnicodeEncodeError, binascii.Error):
        return False


def build_response_101(key: str, extra_headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """Build the ``101 Switching Protocols`` response accepting a handshake (RFC 6455 §4.2.2).

    Args:
        key: the client's ``Sec-WebSocket-Key``.
        extra_headers: more response headers (e.g. ``Sec-WebSocket-Protocol``, ``Set-Cookie``).

    Returns:
        The response head.

    Raises:
        UsageError: if an extra header name is not a token or a value holds CR, LF or another control
            character.
    """
    if not extra_headers:
        return _HEAD_101 + _accept_bytes(key) + b"\r\n\r\n"
    extra = "".join(line + "\r\n" for line in _header_lines(extra_headers)).encode("latin-1")
    return _HEAD_101 + _accept_bytes(key) + b"\r\n" + extra + b"\r\n"


_HEAD_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "


def build_error_response(status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """Build an HTTP error response refusing a handshake; the connection closes after it.

    Args:
        status: the HTTP status, 300-599.
        reason: a short plain-text explanation, sent as the body (followed by a newline).
        headers: extra response headers (e.g. ``Allow: GET``).

    Returns:
        The complete response: status line, ``Content-Type: text/plain; charset=utf-8``, ``Content-Length``,
        ``Connection: close``, the extra headers, and the body.

    Raises:
        UsageError: if the status is outside 300-599, or a header is invalid (see
            :func:`build_response_101`).
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 300 <= status <= 599:
        raise UsageError(f"status {status!r} is not an HTTP redirect or error status")
    return _closing_response(status, "Error", (reason + "\n").encode("utf-8"), "text/plain; charset=utf-8", headers)


def build_response(
    status: int, body: bytes, content_type: str, headers: Sequence[tuple[str, str]] = (), *, method: str = "GET"
) -> bytes:
    """Build a complete HTTP/1.1 response to a plain HTTP request; the connection closes after it.

    Args:
        status: the HTTP status, 200-599.
        body: the body.
        content_type: the ``Content-Type``.
        headers: extra response headers.
        method: the request's method. The response to a ``HEAD`` is the one a GET would get without its body
            (RFC 9110 §9.3.2): its ``Content-Length`` is still the body's.

    Returns:
        The status line, ``Content-Type``, ``Content-Length``, ``Connection: close``, the extra headers, the body
        (none for a HEAD).

    Raises:
        UsageError: if the status is outside 200-599, or a header is invalid.
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise UsageError(f"status {status!r} is not a final HTTP status")
    return _closing_response(status, "Status", body, content_type, headers, send_body=method != "HEAD")


def _closing_response(
    status: int,
    fallback_phrase: str,
    body: bytes,
    content_type: str,
    headers: Sequence[tuple[str, str]],
    send_body: bool = True,
) -> bytes:
    """Status line, Content-Type, Content-Length, ``Connection: close``, the extra headers, then the body (if
    ``send_body``: the length is the body's either way)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = fallback_phrase
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += _header_lines([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    lines.append("Connection: close")
    lines += _header_lines(headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if send_body else head


def _header_lines(headers: Sequence[tuple[str, str]]) -> list[str]:
    lines = []
    for name, value in headers:
        if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
            raise UsageError(f"invalid header name {name!r}")
        if not isinstance(value, str) or _FIELD_VALUE.fullmatch(value) is None:
            raise UsageError(f"invalid value for header {name}: {value!r}")
        lines.append(f"{name}: {value}")
    return lines
