"""What a server decides from the request headers alone: is the ``Origin`` allowed, which subprotocol is chosen.

Sans-I/O and pure, like the rest of protocol/: headers in, a decision out. The runtime turns a refusal into the HTTP
answer (403 for an Origin, 400 for a subprotocol) before any callback of the program runs.

Origins (RFC 6454 §7, RFC 6455 §10.2): a browser sends the page's origin, ``scheme://host[:port]``, lower-case,
with the scheme's default port left out. The allow-list holds exact origins (``https://app.example.com``,
``http://127.0.0.1:8000``) and wildcards for every subdomain of a domain (``https://*.example.com``: matches
``https://a.example.com`` and ``https://a.b.example.com``, not ``https://example.com`` itself, nor another scheme or
port). Comparison is ASCII case-insensitive. ``null`` (sandboxed pages, file://) matches only the literal entry
``null``.

Subprotocols (RFC 6455 §1.9, §4.1, §11.3.4): the client offers a comma-separated token list in
``Sec-WebSocket-Protocol`` (possibly over several header lines); the server answers with exactly one of those tokens
or with no header. The server's list is in its order of preference: the first of the server's that the client
offered wins, never one the client did not offer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from snow_rt_py.protocol.headers import Headers

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
_ORIGIN = re.compile(r"([a-z][a-z0-9+.\-]*)://(\*\.)?([a-z0-9\-._~%!$&'()+,;=\[\]:]+)")


class OriginPolicy:
    """An allow-list of origins, compiled once.

    Args:
        allowed: exact origins and ``scheme://*.domain[:port]`` wildcards; None allows any origin (only
            ``require_origin`` is then checked).
        require_origin: refuse a request that carries no ``Origin`` header (non-browser clients send none).

    Raises:
        ValueError: an entry is not an origin (no scheme, a path, a wildcard anywhere but first).
    """

    def __init__(self, allowed: Iterable[str] | None, require_origin: bool = False) -> None:
        self.any = allowed is None
        self.exact: set[str] = set()
        self.suffixes: list[tuple[str, str]] = []  # (scheme://, .domain[:port])
        self.require_origin = require_origin
        for entry in allowed or ():
            if not isinstance(entry, str):
                raise ValueError(f"allowed_origins: {entry!r} is not a string")
            origin = entry.strip().lower().rstrip("/")
            if origin == "null":
                self.exact.add(origin)
                continue
            match = _ORIGIN.fullmatch(origin)
            if match is None or "*" in match.group(3) or "/" in match.group(3):
                raise ValueError(
                    f"allowed_origins: {entry!r} is not an origin (scheme://host[:port] or scheme://*.domain[:port])"
                )
            if match.group(2):
                self.suffixes.append((match.group(1) + "://", "." + match.group(3)))
            else:
                self.exact.add(origin)

    def check(self, headers: Headers) -> str | None:
        """Why the request's ``Origin`` is refused, or None if it is allowed."""
        origin = headers.get("Origin")
        if origin is None:
            return "an Origin header is required" if self.require_origin else None
        value = origin.strip().lower()
        if self.any or value in self.exact:
            return None
        for scheme, suffix in self.suffixes:
            if value.startswith(scheme) and value.endswith(suffix) and len(value) > len(scheme) + len(suffix):
                host = value[len(scheme) : -len(suffix)]
                if "/" not in host and "@" not in host and ":" not in host:
                    return None
        return f"origin {origin[:200]!r} is not allowed"


def offered_subprotocols(headers: Headers) -> list[str]:
    """The subprotocols the client offered, in its order (every ``Sec-WebSocket-Protocol`` line, comma-separated;
    entries that are not tokens are ignored: they can never match)."""
    value = headers.get("Sec-WebSocket-Protocol")
    if value is None:
        return []
    return [item for item in (part.strip() for part in value.split(",")) if _TOKEN.fullmatch(item)]


def select_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first of ``supported`` (server preference) that the client ``offered``, or None. Exact, case-sensitive
    comparison (RFC 6455 §4.1: the value must be one the client sent)."""
    offered_set = set(offered)
    for name in supported:
        if name in offered_set:
            return name
    return None


def check_subprotocol_names(names: Iterable[str]) -> list[str]:
    """The server's subprotocol list, each checked to be an HTTP token (RFC 6455 §4.1).

    Raises:
        ValueError: a name is not a token.
    """
    checked = []
    for name in names:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"subprotocols: {name!r} is not a token (letters, digits and !#$%&'*+-.^_`|~)")
        checked.append(name)
    return checked
