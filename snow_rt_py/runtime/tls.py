"""TLS (wss://): the server context from PEM files, checked at start so errors name the file, not the first client;
a renewed certificate taken up without a restart (:func:`reload_certificate`); and how a TLS connection ends
(:func:`close_transport`).

Session resumption: the context issues TLS 1.3 session tickets (OpenSSL's default, two per full handshake), so a
client that reconnects with its ticket skips the certificate signature, the costly part of a full handshake (about
half the server's time per connection: BENCHMARKS.md, issue 26). The ticket keys are the context's own, made at
start: tickets stay valid across :func:`reload_certificate`, but not across a restart, nor from one process of
``processes``/``reuse_port`` to another (a ticket another process issued falls back to a full handshake).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from pathlib import Path

from snow_rt_py.runtime.errors import ServerStartError


def _readable(kind: str, path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise ServerStartError(f"TLS {kind} file {str(p)!r} does not exist")
    if not p.is_file():
        raise ServerStartError(f"TLS {kind} file {str(p)!r} is not a regular file")
    if not os.access(p, os.R_OK):
        raise ServerStartError(f"TLS {kind} file {str(p)!r} is not readable")
    return p


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """An ``SSLContext`` for a server with the certificate chain ``cert`` and private key ``key`` (PEM).

    Raises:
        ServerStartError: a file is missing, unreadable, not PEM, or the key does not match the certificate;
            the message names the file.
    """
    cert_path = _readable("certificate", cert)
    key_path = _readable("key", key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        text = str(exc)
        if "KEY_VALUES_MISMATCH" in text or "key values mismatch" in text:
            raise ServerStartError(
                f"TLS key file {str(key_path)!r} does not match certificate {str(cert_path)!r}"
            ) from None
        if "PEM" in text or "no start line" in text.lower():
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_verify_locations(cert_path)
            except ssl.SSLError:
                raise ServerStartError(
                    f"TLS certificate file {str(cert_path)!r} is not a PEM certificate chain"
                ) from None
            raise ServerStartError(f"TLS key file {str(key_path)!r} is not a PEM private key") from None
        raise ServerStartError(f"cannot load TLS files {str(cert_path)!r}, {str(key_path)!r}: {text}") from None
    except OSError as exc:
        raise ServerStartError(f"cannot read TLS files {str(cert_path)!r}, {str(key_path)!r}: {exc}") from None
    return ctx


def reload_certificate(ctx: ssl.SSLContext, cert: str | Path, key: str | Path) -> None:
    """Load a renewed certificate chain and key into the server context ``ctx`` (loop thread: the loop makes the
    connections' TLS sessions from it). Handshakes from now on present the new certificate; open connections keep
    theirs; the session ticket keys are kept, so clients still resume.

    Raises:
        ServerStartError: the files are unusable (as at start, naming the file); ``ctx`` is left as it was.
    """
    server_context(cert, key)  # every check first, on a context of its own: a bad file changes nothing
    ctx.load_cert_chain(Path(cert), Path(key))


def close_transport(transport: asyncio.BaseTransport) -> None:
    """Close ``transport`` once what it holds is written; a TLS one without waiting for the peer's close_notify.

    A TLS transport's ``close()`` (asyncio's and uvloop's) writes what is queued and our close_notify, then keeps
    reading until the peer's close_notify arrives -- up to ``ssl_shutdown_timeout`` -- before it closes TCP. The
    callers end a connection whose WebSocket exchange is over, so nothing the peer sends can matter any more, and
    many clients never send close_notify. So the reading side of the socket is shut down as well (no packet is sent
    for that): the transport reads an end of stream at once, which completes the TLS shutdown, and it closes TCP
    once the kernel has taken our bytes, close_notify included -- as a plain TCP transport's ``close()`` does.
    """
    sock = transport.get_extra_info("socket") if transport.get_extra_info("ssl_object") is not None else None
    transport.close()
    if sock is None:
        return
    # socket.fromfd duplicates the descriptor (uvloop's socket object offers no shutdown()); shutting the duplicate
    # down shuts the connection down, and closing it leaves the transport's own descriptor open. OSError,
    # ValueError: the socket is already closed (descriptor -1) or not connected.
    with (
        contextlib.suppress(OSError, ValueError),
        socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup,
    ):
        dup.shutdown(socket.SHUT_RD)
