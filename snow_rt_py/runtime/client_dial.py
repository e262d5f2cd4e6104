"""Reaching a WebSocket server: the URL, DNS, TCP, an HTTP CONNECT proxy, TLS. Each failure is one clear reason.

:func:`dial` returns a connected socket (through the proxy's tunnel if one applies); the caller hands it to the event
loop with the TLS context of :func:`tls_context`. Every failure raises :class:`DialError` with a reason naming it:
``DNS lookup of HOST failed: ...``, ``connection refused (HOST:PORT)``, ``proxy HOST:PORT refused CONNECT: HTTP 403
Forbidden``; TLS failures are named by :func:`tls_failure` (``TLS certificate verify failed: ...``).

Proxies (:func:`proxy_for`): the option, else the environment as curl and Python's urllib read it -- ``https_proxy``
for wss://, ``http_proxy`` for ws:// (either case), skipped for hosts in ``no_proxy``. Only HTTP proxies, always as
a ``CONNECT`` tunnel (a WebSocket is not a request a proxy may forward).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import urllib.parse
import urllib.request
from typing import NamedTuple

from snow_rt_py.runtime.errors import InvalidArgumentError

__all__ = ["DialError", "Proxy", "Target", "dial", "parse_url", "proxy_for", "tls_context", "tls_failure"]

_MAX_PROXY_RESPONSE = 16 * 1024


class DialError(Exception):
    """The server could not be reached. ``reason`` names why; ``status`` is a proxy's HTTP status, if any."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Target(NamedTuple):
    """A parsed ws:// or wss:// URL."""

    secure: bool
    host: str  # without brackets for IPv6
    port: int
    resource: str  # path and query, starting with "/"
    url: str

    @property
    def host_header(self) -> str:
        """The ``Host`` value: the port only when it is not the scheme's default (RFC 6455 §4.1)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


class Proxy(NamedTuple):
    """An HTTP proxy to tunnel through."""

    host: str
    port: int
    authorization: str | None  # a Proxy-Authorization value, from user:password in its URL


def parse_url(url: str) -> Target:
    """Parse a WebSocket URL.

    Raises:
        InvalidArgumentError: not a ws:// or wss:// URL with a host (the message names the URL).
    """
    if not isinstance(url, str):
        raise InvalidArgumentError(f"url must be a str, got {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise InvalidArgumentError(f"invalid URL {url!r}: the scheme must be ws:// or wss://")
    if not parts.hostname:
        raise InvalidArgumentError(f"invalid URL {url!r}: no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgumentError(f"invalid URL {url!r}: user info is not allowed in a WebSocket URL")
    if parts.fragment or "#" in url:
        raise InvalidArgumentError(f"invalid URL {url!r}: a WebSocket URL has no fragment (RFC 6455 §3)")
    secure = scheme == "wss"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in resource):
        resource = urllib.parse.quote(resource, safe="/?&=%:@!$'()*+,;~-._")
    return Target(secure, parts.hostname, port or (443 if secure else 80), resource, url)


def redirect_target(current: Target, location: str) -> Target:
    """Where a 3xx ``Location`` leads (relative to the current URL; http(s) is taken as ws(s)).

    Raises:
        DialError: the Location is not a usable URL, or it leads from wss:// to ws://.
    """
    joined = urllib.parse.urljoin(current.url, location.strip())
    scheme, sep, rest = joined.partition("://")
    scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    try:
        target = parse_url(f"{scheme}{sep}{rest}")
    except InvalidArgumentError:
        raise DialError(f"redirect to an invalid URL: {location[:200]!r}") from None
    if current.secure and not target.secure:
        raise DialError(f"redirect from wss:// to ws:// refused ({target.url})")
    return target


def proxy_for(target: Target, option: str | bool | None) -> Proxy | None:
    """The proxy to reach ``target`` through: the option (a URL; "" or False: none), or the environment (None)."""
    if option == "" or option is False:
        return None
    if option is None:
        proxies = urllib.request.getproxies_environment()
        url = proxies.get("https" if target.secure else "http")
        if not url:
            return None
        if urllib.request.proxy_bypass_environment(target.host, proxies):  # type: ignore[attr-defined]
            return None
    else:
        url = str(option)
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 80
    except ValueError as exc:
        raise DialError(f"invalid proxy URL {url!r}: {exc}") from None
    if parts.scheme != "http" or not parts.hostname:
        raise DialError(f"unsupported proxy {url!r}: only http:// proxies (CONNECT)")
    auth = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return Proxy(parts.hostname, port, auth)


async def dial(loop: asyncio.AbstractEventLoop, target: Target, proxy: Proxy | None) -> socket.socket:
    """A TCP socket connected to ``target`` (or tunnelled to it through ``proxy``), non-blocking.

    Raises:
        DialError: DNS, TCP or the proxy failed (the reason names it).
    """
    host, port = (proxy.host, proxy.port) if proxy is not None else (target.host, target.port)
    sock = await _connect_tcp(loop, host, port)
    if proxy is None:
        return sock
    try:
        await _tunnel(loop, sock, target, proxy)
    except BaseException:
        sock.close()
        raise
    return sock


async def _connect_tcp(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DialError(f"DNS lookup of {host} failed: {exc.strerror or exc}") from None
    last = f"cannot connect to {host}:{port}"
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            return sock
        except ConnectionRefusedError:
            last = f"connection refused ({host}:{port})"
        except OSError as exc:
            last = f"cannot connect to {host}:{port}: {exc.strerror or exc}"
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise DialError(last)


async def _tunnel(loop: asyncio.AbstractEventLoop, sock: socket.socket, target: Target, proxy: Proxy) -> None:
    """Open a CONNECT tunnel through the proxy (RFC 9110 §9.3.6)."""
    where = f"[{target.host}]:{target.port}" if ":" in target.host else f"{target.host}:{target.port}"
    lines = [f"CONNECT {where} HTTP/1.1", f"Host: {where}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    name = f"proxy {proxy.host}:{proxy.port}"
    try:
        await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise DialError(f"{name} closed the connection before answering CONNECT")
            head += chunk
            if len(head) > _MAX_PROXY_RESPONSE:
                raise DialError(f"{name}: CONNECT response head over {_MAX_PROXY_RESPONSE} bytes")
    except OSError as exc:
        raise DialError(f"{name}: {exc.strerror or exc}") from None
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or not fields[1].isdigit():
        raise DialError(f"{name}: invalid answer to CONNECT: {status_line[:80]!r}")
    status = int(fields[1])
    if not 200 <= status < 300:
        phrase = f" {fields[2]}" if len(fields) > 2 else ""
        raise DialError(f"{name} refused CONNECT: HTTP {status}{phrase}", status)


def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """The client's TLS context: the system's CA store (or ``ca_file``), host name checked; or nothing checked
    (``verify=False``: unsafe, see ClientOptions)."""
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        try:
            ctx = ssl.create_default_context(cafile=ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidArgumentError(f"ca_file {ca_file!r} is not a PEM file of CA certificates: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls_failure(exc: BaseException) -> str:
    """The reason a TLS handshake failed with ``exc``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    return f"TLS handshake failed: {exc}"
