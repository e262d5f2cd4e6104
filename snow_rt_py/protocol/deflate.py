"""permessage-deflate (RFC 7692): negotiating it, and compressing / decompressing one message. Sans-I/O.

Negotiation (RFC 7692 §5, §7.1), done by :func:`negotiate` on the ``Sec-WebSocket-Extensions`` request headers:

* The client's offers are tried in the order it sent them (§5.1); extensions other than ``permessage-deflate``
  are ignored (RFC 6455 §9.1: the server answers only with extensions it accepts).
* An offer is declined -- and the next one tried -- if it has a parameter not defined for an offer, the same
  parameter twice, a ``*_no_context_takeover`` with a value, a ``server_max_window_bits`` without a value, or a
  window-bits value that is not a decimal integer 8-15 without leading zeros (§7.1, §7.1.2; quoted values are
  unquoted first, RFC 6455 §9.1). A syntactically broken element of the header is declined the same way. If no
  offer fits, the connection goes on without compression.
* The response holds only what §7.1 lets a server send: ``server_no_context_takeover`` (always when the offer
  has it, §7.1.1.1; and whenever our policy does not keep a compression context), ``client_no_context_takeover``
  (our request that the client keep none, §7.1.1.2), ``server_max_window_bits`` (only if the offer has it, with
  the same or a smaller value, §7.1.2.1), ``client_max_window_bits`` (only if the offer has it, §7.1.2.2).

zlib and window bits 8: zlib's raw deflate refuses a 256-byte window (``deflateInit2`` with ``windowBits = -8``
fails; zlib turns 8 into 9 even in its own format). A client that offers ``server_max_window_bits=8`` asks that
no back-reference reaches further than 256 bytes. We accept that offer (answering ``server_max_window_bits=8``)
and keep the promise by compressing its messages with a 512-byte window and zlib's ``Z_RLE`` strategy, whose
matches all have distance 1: every back-reference is within any window (§7.1.2.1 allows any compressor that
stays within the announced window). The ratio is lower, the stream always valid. On the receiving side
(``client_max_window_bits=8``) nothing special is needed: a decompressor with a larger window inflates any
stream made with a smaller one.

The per-message transform (§7.2): a compressed message's payload is the deflate output of the whole message
ended with a sync flush, minus its final ``00 00 ff ff`` (§7.2.1); the receiver appends those four bytes back and
inflates (§7.2.2). RSV1 is set on the first frame of a compressed message only (§6); the rules about RSV1 live in
:class:`~snow_rt_py.protocol.connection.ServerProtocol`. Messages may be sent uncompressed at will (§6: RSV1 clear).

Decompression is bounded (:class:`Inflater`): the decompressed size of a message counts against
``max_message_size``, checked while inflating -- zlib is never asked for more than the bytes still allowed plus
one -- so a small frame that would inflate to gigabytes fails with 1009 having produced at most the limit + 1
bytes. Data that is not valid deflate fails with 1007 (the message's data is inconsistent with its type, RFC
6455 §7.4.1).

Decompressors are never reused across messages that do not share a context: Python's zlib cannot reset one, and a
reused one would let a client's back-references read the previous message -- another connection's, if it came from
a pool. A fresh decompressor costs about 0.1 µs and allocates its window only while a message inflates, so an idle
connection holds none. Compressors can be shared: ending every message with a full flush (``Z_FULL_FLUSH``)
empties their history, so the next message, whoever's it is, never refers to it (:func:`compress_message`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

from snow_rt_py.protocol.close import CloseCode
from snow_rt_py.protocol.errors import ProtocolError

__all__ = [
    "EXTENSION_NAME",
    "TAIL",
    "DeflateParams",
    "Inflater",
    "compress_message",
    "compressor_memory",
    "decompressor_memory",
    "negotiate",
    "new_compressor",
    "parse_extensions",
]

EXTENSION_NAME = "permessage-deflate"  # RFC 7692 §7
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: what a sync flush ends with, stripped on the wire
MIN_WINDOW_BITS = 8  # RFC 7692 §7.1.2.1
MAX_WINDOW_BITS = 15
_ZLIB_MIN_RAW_WINDOW_BITS = 9  # zlib refuses raw deflate with an 8-bit window (see the module docstring)
DEFAULT_LEVEL = 6

_OFFER_PARAMS = frozenset(
    {
        "server_no_context_takeover",  # RFC 7692 §7.1.1.1
        "client_no_context_takeover",  # RFC 7692 §7.1.1.2
        "server_max_window_bits",  # RFC 7692 §7.1.2.1
        "client_max_window_bits",  # RFC 7692 §7.1.2.2
    }
)
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # RFC 9110 §5.6.2
_QUOTED = r'"(?:[^"\\]|\\.)*"'  # RFC 9110 §5.6.4
_PARAM = re.compile(rf"[ \t]*({_TOKEN})[ \t]*(?:=[ \t]*({_TOKEN}|{_QUOTED})[ \t]*)?")
_TOKEN_RE = re.compile(_TOKEN)
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")  # RFC 7692 §7.1.2: 8-15, decimal, no leading zero

Params = list[tuple[str, str | None]]


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What was agreed for one connection (RFC 7692 §7.1).

    Attributes:
        server_no_context_takeover: we start every message we send from an empty context.
        client_no_context_takeover: the client starts every message it sends from an empty context (so we inflate
            each one with a fresh decompressor and keep none between messages).
        server_window_bits: the window our compressor uses (9-15; 9 with ``rle`` for an agreed 8).
        rle: compress with zlib's Z_RLE strategy (back-references of distance 1 only): what an agreed
            ``server_max_window_bits=8`` needs (see the module docstring).
        client_window_bits: the largest window the client may use: the window of our decompressor.
        response: the ``Sec-WebSocket-Extensions`` response header value.
    """

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_window_bits: int
    rle: bool
    client_window_bits: int
    response: str


def parse_extensions(values: list[str]) -> list[tuple[str, Params] | None]:
    """Split ``Sec-WebSocket-Extensions`` header values into offers (RFC 6455 §9.1), in order.

    Args:
        values: every value of the header, in order (a repeated header is the same as one joined with commas).

    Returns:
        One item per list element: ``(name, [(param, value or None), ...])`` with quoted values unquoted, or None
        for an element that does not follow the grammar (declined, like an offer with a bad parameter). Empty
        elements are skipped.
    """
    offers: list[tuple[str, Params] | None] = []
    for value in values:
        elements = _split(value, ",")
        if elements is None:  # an unterminated quoted string: nothing in this value can be trusted
            offers.append(None)
            continue
        for element in elements:
            if element.strip(" \t"):
                offers.append(_parse_element(element))
    return offers


def _split(text: str, sep: str) -> list[str] | None:
    """``text`` split at ``sep`` outside quoted strings; None if a quoted string is not terminated."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return None if quoted else parts


def _parse_element(element: str) -> tuple[str, Params] | None:
    parts = _split(element, ";")
    assert parts is not None  # the element came out of a successful _split
    name = parts[0].strip(" \t")
    if _TOKEN_RE.fullmatch(name) is None:
        return None
    params: Params = []
    for part in parts[1:]:
        match = _PARAM.fullmatch(part)
        if match is None:
            return None
        raw = match.group(2)
        if raw is not None and raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            if _TOKEN_RE.fullmatch(raw) is None:  # RFC 6455 §9.1: an unquoted value must be a token
                return None
        params.append((match.group(1).lower(), raw))
    return name, params


def _window_bits(value: str | None) -> int | None:
    """The value of a window-bits parameter, or None if invalid (RFC 7692 §7.1.2)."""
    if value is None or _WINDOW_BITS.fullmatch(value) is None:
        return None
    return int(value)


def negotiate(values: list[str], *, context_takeover: bool, window_bits: int = MAX_WINDOW_BITS) -> DeflateParams | None:
    """Choose the first acceptable ``permessage-deflate`` offer (RFC 7692 §5.1) and build our response.

    Args:
        values: the values of the request's ``Sec-WebSocket-Extensions`` headers (an empty list: no offer).
        context_takeover: our policy: True keeps a compression context per connection in both directions where the
            client allows it (``dedicated``); False asks for no context takeover both ways (``shared``: no zlib
            state outlives a message).
        window_bits: the largest window (8-15) we want to use: for our compressor, and -- with context takeover,
            when the client offered ``client_max_window_bits`` -- for the client's, which bounds our decompressor.

    Returns:
        The agreed parameters and the response header value, or None if no offer is acceptable (continue without
        compression).
    """
    window_bits = max(MIN_WINDOW_BITS, min(MAX_WINDOW_BITS, window_bits))
    for offer in parse_extensions(values):
        if offer is None or offer[0].lower() != EXTENSION_NAME:
            continue
        agreed = _accept(offer[1], context_takeover, window_bits)
        if agreed is not None:
            return agreed
    return None


def _accept(params: Params, context_takeover: bool, window_bits: int) -> DeflateParams | None:
    """The response to one offer, or None to decline it (RFC 7692 §7.1)."""
    seen: dict[str, str | None] = {}
    for name, value in params:
        if name not in _OFFER_PARAMS or name in seen:  # §7.1: unknown or repeated parameter
            return None
        seen[name] = value
    for name in ("server_no_context_takeover", "client_no_context_takeover"):
        if name in seen and seen[name] is not None:  # §7.1.1: these take no value
            return None
    server_max: int | None = None
    if "server_max_window_bits" in seen:  # §7.1.2.1: a value is required
        server_max = _window_bits(seen["server_max_window_bits"])
        if server_max is None:
            return None
    client_offered = "client_max_window_bits" in seen
    client_max = MAX_WINDOW_BITS
    if client_offered and seen["client_max_window_bits"] is not None:  # §7.1.2.2: the value is optional
        offered = _window_bits(seen["client_max_window_bits"])
        if offered is None:
            return None
        client_max = offered

    server_nct = "server_no_context_takeover" in seen or not context_takeover
    client_nct = "client_no_context_takeover" in seen or not context_takeover
    response = [EXTENSION_NAME]
    if server_nct:
        response.append("server_no_context_takeover")
    if client_nct:
        response.append("client_no_context_takeover")
    server_bits = window_bits
    if server_max is not None:
        server_bits = min(server_max, window_bits)
        response.append(f"server_max_window_bits={server_bits}")  # §7.1.2.1: same or smaller value
    client_bits = MAX_WINDOW_BITS
    if client_offered:
        # The client may take any window up to what we answer; with a context kept, a smaller one is less memory.
        client_bits = min(client_max, window_bits) if context_takeover and not client_nct else client_max
        if client_bits < MAX_WINDOW_BITS or seen["client_max_window_bits"] is not None:
            response.append(f"client_max_window_bits={client_bits}")
    return DeflateParams(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_window_bits=max(server_bits, _ZLIB_MIN_RAW_WINDOW_BITS),
        rle=server_bits < _ZLIB_MIN_RAW_WINDOW_BITS,
        client_window_bits=client_bits,
        response="; ".join(response),
    )


# -- the per-message transform ----------------------------------------------------------------------------------


def new_compressor(window_bits: int, mem_level: int = 8, *, rle: bool = False, level: int = DEFAULT_LEVEL) -> Any:
    """A raw-deflate compressor (no zlib header) for permessage-deflate.

    Args:
        window_bits: 9-15 (see the module docstring for 8).
        mem_level: zlib's memLevel, 1-9 (memory of the match finder: 2**(mem_level + 9) bytes).
        rle: use Z_RLE (matches of distance 1 only).
        level: zlib's compression level, 0-9.
    """
    strategy = zlib.Z_RLE if rle else zlib.Z_DEFAULT_STRATEGY
    return zlib.compressobj(level, zlib.DEFLATED, -max(window_bits, _ZLIB_MIN_RAW_WINDOW_BITS), mem_level, strategy)


def compressor_memory(window_bits: int, mem_level: int) -> int:
    """What zlib's deflate state takes, in bytes (zlib's zconf.h: (1 << (windowBits+2)) + (1 << (memLevel+9)),
    plus its ~6 KiB state)."""
    return (1 << (max(window_bits, _ZLIB_MIN_RAW_WINDOW_BITS) + 2)) + (1 << (mem_level + 9)) + 6 * 1024


def decompressor_memory(window_bits: int) -> int:
    """What zlib's inflate state takes once a message was inflated: its window (1 << windowBits) plus ~7 KiB."""
    return (1 << window_bits) + 7 * 1024


def compress_message(compressor: Any, data: bytes | bytearray | memoryview, *, reset: bool) -> bytes:
    """The payload of a compressed message (RFC 7692 §7.2.1): deflate ``data``, flush, strip ``00 00 ff ff``.

    Args:
        compressor: from :func:`new_compressor`.
        data: the whole message.
        reset: end with a full flush, which empties the compressor's history: the next message does not refer to
            this one (no context takeover, or a compressor shared between connections). Else a sync flush keeps it.

    Returns:
        The payload, to send in a frame with RSV1 set.
    """
    out: bytes = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH if reset else zlib.Z_SYNC_FLUSH)
    # A sync or full flush always ends with the empty stored block 00 00 ff ff.
    return out[:-4]


class Inflater:
    """Decompresses the messages of one connection, bounded by the message size limit (RFC 7692 §7.2.2).

    Feed each frame of a compressed message, in order, to :meth:`feed`; the last one with ``fin=True``.

    Args:
        context_takeover: the client keeps its context between messages (one decompressor for the connection,
            made at the first message); False: a fresh decompressor per message, none kept in between.
        window_bits: the client's window (8-15).
    """

    __slots__ = ("_context_takeover", "_d", "_wbits")

    def __init__(self, *, context_takeover: bool, window_bits: int = MAX_WINDOW_BITS) -> None:
        self._context_takeover = context_takeover
        # zlib's inflate takes any stream made with a window up to its own; 8 is not accepted for raw inflate by
        # every zlib, and 9 inflates it all the same.
        self._wbits = -max(window_bits, _ZLIB_MIN_RAW_WINDOW_BITS)
        self._d: Any = None

    @property
    def stateless_window_bits(self) -> int:
        """The raw window every message is inflated with when the client keeps no context between messages (a
        fresh decompressor per message: a whole compressed frame may be inflated in one step, as the protocol's C
        part does), else 0."""
        return 0 if self._context_takeover else -self._wbits

    def feed(self, data: bytes, limit: int, fin: bool) -> bytes:
        """Inflate the next frame payload of the current compressed message.

        Args:
            data: the frame's payload (unmasked).
            limit: how many more decompressed bytes the message may have.
            fin: this is the message's last frame (the ``00 00 ff ff`` tail is appended, §7.2.2).

        Returns:
            The decompressed bytes of this frame.

        Raises:
            ProtocolError: 1009 if the message inflates to more than ``limit`` bytes (decided having produced at
                most ``limit + 1``); 1007 if the data is not valid deflate.
        """
        d = self._d
        if d is None:
            d = self._d = zlib.decompressobj(self._wbits)
        try:
            pieces, size = _inflate(d, data, limit)
            if fin and not d.eof:
                more, extra = _inflate(d, TAIL, limit - size)
                pieces += more
                size += extra
            if fin and d.eof and (d.unused_data not in (b"", TAIL[: len(d.unused_data)]) or d.unconsumed_tail):
                raise ProtocolError(CloseCode.INVALID_PAYLOAD, "data after the end of the deflate stream")
        except zlib.error:
            self._d = None
            raise ProtocolError(CloseCode.INVALID_PAYLOAD, "invalid compressed data") from None
        except ProtocolError:
            self._d = None
            raise
        if fin and (not self._context_takeover or d.eof):
            # A stream ended by a final block (BFINAL) cannot go on: the client starts a new one next time.
            self._d = None
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    def discard(self) -> None:
        """Drop the decompressor (the connection failed or ended)."""
        self._d = None


INFLATE_STEP = 256 << 10
"""Most bytes one zlib call may produce: output is taken in pieces of this size at most, so a message over the limit
is found having held the limit + 1 byte plus one piece, never Python's buffer for a whole unbounded output."""


def _inflate(d: Any, data: bytes, limit: int) -> tuple[list[bytes], int]:
    """Inflate ``data`` with ``d`` into pieces; raise 1009 once more than ``limit`` bytes come out.

    The input goes in by slices of at most INFLATE_STEP bytes: zlib hands what it did not consume back as a new
    object (``unconsumed_tail``), and giving it the whole 16 MiB payload at each step would copy it again and again.
    """
    pieces: list[bytes] = []
    size = 0
    view = memoryview(data)
    for start in range(0, max(len(data), 1), INFLATE_STEP):
        chunk: bytes | memoryview = view[start : start + INFLATE_STEP]
        while True:
            want = min(limit - size + 1, INFLATE_STEP)
            piece: bytes = d.decompress(chunk, want)
            size += len(piece)
            if size > limit:
                raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, "message too big")
            if piece:
                pieces.append(piece)
            chunk = d.unconsumed_tail
            if not chunk and len(piece) < want:  # a full output buffer may mean more is pending inside zlib
                break
    if not pieces:
        pieces.append(b"")
    return pieces, size
