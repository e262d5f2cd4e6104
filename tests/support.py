"""What the suite shares besides fixtures (import it as ``tests.support``): a thread-safe record of callbacks with
bounded waits, the recording handler built on it, the one way tests start a server through the Python API, and
TLS files with a client context for wss:// tests.

The fixtures that use them (``start_server``, ``recorder``, ``server_options``) are in tests/conftest.py.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme

import snow_rt_py
from snow_rt_py import Connection, Handler, Headers, RunningServer
from snow_rt_py.testing import RawClient

Call = tuple[Any, ...]


class CallLog:
    """Calls recorded in order as tuples whose first item is their kind (``("close", conn_id, code, reason)``),
    from any thread; waits are bounded and fail the test with what was recorded so far."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.cond = threading.Condition()  # reentrant: a predicate may call the accessors below

    def record(self, *call: Any) -> None:
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()

    def of(self, kind: str) -> list[Call]:
        """The calls of one kind so far, in order."""
        with self.cond:
            return [call for call in self.calls if call[0] == kind]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``condition()`` holds (checked after every call recorded), or fail the test."""
        with self.cond:
            if not self.cond.wait_for(condition, timeout):
                raise AssertionError(f"timed out after {timeout} s; calls so far: {self.calls!r}")

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(calls)`` holds, or fail the test."""
        self.wait_until(lambda: predicate(self.calls), timeout)

    def wait_count(self, kind: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Block until ``count`` calls of ``kind`` were recorded; return all of them so far."""
        self.wait_until(lambda: len(self.of(kind)) >= count, timeout)
        return self.of(kind)


class Recorder(CallLog, Handler):
    """An echo handler that records every callback with its arguments:

    ``("connect", conn.id, path, headers)``, ``("message", conn.id, message)``, ``("close", conn.id, code,
    reason)``, ``("info", conn.id, message)``. Subclasses change what a callback does and call ``super()`` to
    keep it recorded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conns: dict[int, Connection] = {}  # every connection that reached on_connect, by id

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> Any:
        with self.cond:
            self.conns[conn.id] = conn
            self.record("connect", conn.id, path, headers)
        return True

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self.record("message", conn.id, message)
        conn.send(message)

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        self.record("close", conn.id, code, reason)

    def on_info(self, conn: Connection, message: Any) -> None:
        self.record("info", conn.id, message)

    def newest(self) -> Connection:
        """The connection with the highest id that reached on_connect."""
        with self.cond:
            return self.conns[max(self.conns)]

    @property
    def closed(self) -> dict[int, tuple[int, str]]:
        """``{conn.id: (code, reason)}`` of every on_close so far."""
        with self.cond:
            return {call[1]: (call[2], call[3]) for call in self.of("close")}

    def closes(self) -> list[Call]:
        return self.of("close")

    def wait_closes(self, count: int, timeout: float = 5.0) -> list[tuple[int, str]]:
        """Block until ``count`` connections have closed; return every ``(code, reason)`` so far, in order."""
        return [(code, reason) for _, _, code, reason in self.wait_count("close", count, timeout)]

    def wait_close(self, timeout: float = 5.0) -> tuple[int, str]:
        """Wait for the first on_close; return its ``(code, reason)``."""
        return self.wait_closes(1, timeout)[0]


class CloseOnRequest(Recorder):
    """A Recorder that answers the text ``close me`` with ``conn.close(code, reason)`` instead of echoing it."""

    def __init__(self, code: int = 4100, reason: str = "as requested") -> None:
        super().__init__()
        self.close_with = (code, reason)

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if message == "close me":
            self.record("message", conn.id, message)
            conn.close(*self.close_with)
        else:
            super().on_message(conn, message)


def start(handler: Handler | None = None, **options: Any) -> RunningServer:
    """Start a server on 127.0.0.1, on a free port unless told otherwise; a :class:`Recorder` if no handler.

    The caller stops it (the ``start_server`` fixture does at teardown).
    """
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    return snow_rt_py.start(handler if handler is not None else Recorder(), **options)


def tls_files(directory: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A certificate chain and key for 127.0.0.1 (PEM files in ``directory``, from a fresh trustme CA), and a
    client context that trusts it: ``(cert, key, context)``."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return cert_path, key_path, ctx


def answer_close_without_close_notify(client: RawClient) -> tuple[int | None, str]:
    """Read the server's Close and answer it with the same code, as a raw TLS client does; then send nothing more:
    no TLS close_notify, no FIN while the caller keeps ``client`` open. Returns the server's code and reason."""
    code, reason = client.expect_close()
    client.send_close(code)
    return code, reason


def server_close_notify(client: RawClient) -> bool:
    """True if what the server sends next (bounded by the client's timeout) is a TLS close_notify: a clean end of
    the TLS stream, not a TCP close without one (``SSLEOFError``) or more data."""
    try:
        return client.sock.recv(1) == b""
    except ssl.SSLEOFError:
        return False
