"""Hostile WebSocket clients (RFC 6455, client side) for bench/bench_abuse.py. Standard library only.

One scenario per run. The client talks to its driver in lines: it prints JSON objects on stdout, each either an
event (``{"event": NAME, ...}``, after which it usually waits for one line on stdin before going on, so the driver
can measure the server in between) or the final result (``{"result": {...}}``). End of stdin ends it; so does
``--timeout`` (SIGALRM), whatever happens. Every connection ends with a TCP reset (SO_LINGER 0, then close).

Scenarios (``SCENARIO --url ws://127.0.0.1:PORT/ [options]``):

``resets``
    Per round: ``--clients`` connections complete the handshake, each sends the first ``--send`` bytes of a
    binary frame whose header declares ``--frame`` bytes (masked); event ``loaded``; wait; reset them all; event
    ``reset``; wait. ``--rounds`` rounds.
``pings``
    One connection (SO_RCVBUF ``--rcvbuf``, never read after the handshake) sends ``--count`` masked pings with
    ``--payload`` bytes each, as fast as TCP takes them, for at most ``--seconds``; event ``sent``; wait; then it
    reads for at most ``--drain`` seconds (counting the pongs, looking for a close frame); reset.
``fragments``
    One connection sends a binary frame with FIN=0 and ``--count`` - 1 continuation frames with FIN=0, one byte
    each (a message never finished), for at most ``--seconds``; event ``sent``; wait (it holds the connection);
    reads for at most ``--drain`` seconds (a close frame?); reset.
``noread``
    One connection (small SO_RCVBUF) sends ``--size``-byte binary messages, up to ``--total`` bytes or
    ``--seconds``, never reading the echoes; event ``sent``; wait; then reads for at most ``--drain`` seconds to
    see what the server did (a close frame and its code, the end of the stream, a reset, or more echoes); reset.
``stream``
    One connection: event ``start``; sends ``--count`` binary messages of ``--size`` bytes as fast as TCP takes
    them, for at most ``--seconds``; event ``sent``; wait; reset. (The slow-handler scenario.)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any
from urllib.parse import urlsplit

CHUNK = 1 << 20  # largest single send()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_go() -> None:
    """Block until the driver writes a line; its end of stdin ends this client."""
    if not sys.stdin.readline():
        sys.exit(3)


def parse_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise SystemExit(f"abuse_client: not a ws:// URL: {url}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


def mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3 masking, with Python's big integers doing the XOR in one pass."""
    n = len(payload)
    if n == 0:
        return b""
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keystream, "little")).to_bytes(n, "little")


def header(opcode: int, length: int, key: bytes, fin: bool = True) -> bytes:
    """A client frame's header (mask bit set, ``key`` appended) for a payload of ``length`` bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + key


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    key = os.urandom(4)
    return header(opcode, len(payload), key, fin) + mask(payload, key)


def reset(sock: socket.socket) -> None:
    """Drop the connection with a TCP RST: SO_LINGER on with a zero timeout, then close."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def connect(host: str, port: int, timeout: float, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock


def request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> bytes:
    """Read the handshake response (the socket has a timeout); return what followed it. Raises if not a 101."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
        if len(data) > 65536:
            raise ConnectionError("handshake response too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise ConnectionError(f"handshake refused: {status.decode(errors='replace')}")
    return rest


def open_one(host: str, port: int, path: str, timeout: float, rcvbuf: int = 0) -> socket.socket:
    sock = connect(host, port, timeout, rcvbuf)
    try:
        sock.sendall(request(host, port, path))
        read_response(sock)
    except OSError:
        reset(sock)
        raise
    return sock


def pump(sock: socket.socket, first: bytes, unit: bytes, count: int, deadline: float) -> dict[str, Any]:
    """Send ``first`` then ``unit`` ``count - 1`` times, non-blocking, as fast as TCP takes it, until done or
    ``deadline`` (monotonic). Never reads. Returns what went out, how long it took, whether the sender was stalled
    by backpressure at the end, and the error that stopped it (the server dropped the connection), if any."""
    sock.setblocking(False)
    total = len(first) + len(unit) * (count - 1)
    block = unit * max(1, CHUNK // len(unit))  # periodic in len(unit): block[k:] is the stream from any k < len(unit)
    sent = 0
    t0 = time.monotonic()
    last_progress = t0
    error = None
    error_at = None
    while sent < total:
        now = time.monotonic()
        if now >= deadline:
            break
        if sent < len(first):
            view = memoryview(first)[sent:]
        else:
            start = (sent - len(first)) % len(unit)
            view = memoryview(block)[start : start + min(total - sent, len(block) - start)]
        try:
            n = sock.send(view)
        except BlockingIOError:
            select.select([], [sock], [], min(0.05, max(0.0, deadline - now)))
            continue
        except OSError as exc:
            error, error_at = errno.errorcode.get(exc.errno or 0, str(exc)), now - t0
            break
        sent += n
        last_progress = time.monotonic()
    end = time.monotonic()
    units = 0 if sent < len(first) else 1 + (sent - len(first)) // len(unit)
    return {
        "bytes": sent,
        "units": units,
        "complete": sent == total,
        "seconds": round(end - t0, 3),
        "last_progress_s": round(last_progress - t0, 3),
        "error": error,
        "error_at_s": None if error_at is None else round(error_at, 3),
    }


def scenario_resets(opts: argparse.Namespace, host: str, port: int, path: str) -> dict[str, Any]:
    key = os.urandom(4)
    head = header(0x2, opts.frame, key)
    part = head + mask(os.urandom(opts.send), key)
    rounds = []
    for rnd in range(1, opts.rounds + 1):
        t0 = time.monotonic()
        socks: list[socket.socket] = []
        errors: list[str] = []
        for _ in range(opts.clients):
            try:
                socks.append(connect(host, port, opts.io_timeout))
            except OSError as exc:
                errors.append(f"connect: {exc}")
        req = [request(host, port, path) for _ in socks]
        ok: list[socket.socket] = []
        for sock, data in zip(socks, req, strict=True):
            try:
                sock.sendall(data)
            except OSError as exc:
                errors.append(f"request: {exc}")
                reset(sock)
                continue
            ok.append(sock)
        socks, ok = ok, []
        for sock in socks:
            try:
                read_response(sock)
            except OSError as exc:
                errors.append(f"handshake: {exc}")
                reset(sock)
                continue
            ok.append(sock)
        socks, ok = ok, []
        t_open = time.monotonic()
        for sock in socks:
            try:
                sock.sendall(part)
            except OSError as exc:
                errors.append(f"send: {exc}")
                reset(sock)
                continue
            ok.append(sock)
        socks = ok
        t_sent = time.monotonic()
        emit(
            {
                "event": "loaded",
                "round": rnd,
                "connections": len(socks),
                "open_s": round(t_open - t0, 3),
                "send_s": round(t_sent - t_open, 3),
                "errors": len(errors),
            }
        )
        wait_go()
        for sock in socks:
            reset(sock)
        rounds.append({"connections": len(socks), "errors": errors[:5], "error_count": len(errors)})
        emit({"event": "reset", "round": rnd})
        wait_go()
    return {"rounds": rounds, "frame": opts.frame, "sent_per_connection": len(part)}


def scenario_pings(opts: argparse.Namespace, host: str, port: int, path: str) -> dict[str, Any]:
    sock = open_one(host, port, path, opts.io_timeout, opts.rcvbuf)
    ping = frame(0x9, os.urandom(opts.payload))
    out = pump(sock, ping, ping, opts.count, time.monotonic() + opts.seconds)
    emit({"event": "sent", **out})
    wait_go()
    seen = read_outcome(sock, opts.drain)
    reset(sock)
    return {**out, "frame_bytes": len(ping), "outcome": seen}


def scenario_fragments(opts: argparse.Namespace, host: str, port: int, path: str) -> dict[str, Any]:
    sock = open_one(host, port, path, opts.io_timeout, opts.rcvbuf)
    first = frame(0x2, b"\x00", fin=False)
    cont = frame(0x0, b"\x00", fin=False)
    out = pump(sock, first, cont, opts.count, time.monotonic() + opts.seconds)
    emit({"event": "sent", **out})
    wait_go()
    seen = read_outcome(sock, opts.drain)
    reset(sock)
    return {**out, "outcome": seen}


def read_outcome(sock: socket.socket, seconds: float) -> dict[str, Any]:
    """Read for at most ``seconds``: server frames (unmasked) until a close frame, the end of the stream, or an
    error. Returns what was seen."""
    sock.setblocking(False)
    deadline = time.monotonic() + seconds
    buf = bytearray()
    pos = 0  # start of the next frame header in the stream (buf holds the stream from ``base``)
    base = 0
    got = 0
    frames = pongs = 0
    outcome: dict[str, Any] = {"close_code": None, "eof": False, "error": None}
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            select.select([sock], [], [], min(0.05, max(0.0, deadline - time.monotonic())))
            continue
        except OSError as exc:
            outcome["error"] = errno.errorcode.get(exc.errno or 0, str(exc))
            break
        if not chunk:
            outcome["eof"] = True
            break
        got += len(chunk)
        buf += chunk
        while True:  # walk the frame headers; payloads are skipped, not kept
            rel = pos - base
            if rel + 2 > len(buf):
                break
            b0, b1 = buf[rel], buf[rel + 1]
            length, hlen = b1 & 0x7F, 2
            if length == 126:
                if rel + 4 > len(buf):
                    break
                length, hlen = struct.unpack_from("!H", buf, rel + 2)[0], 4
            elif length == 127:
                if rel + 10 > len(buf):
                    break
                length, hlen = struct.unpack_from("!Q", buf, rel + 2)[0], 10
            if b0 & 0x0F == 0x8:
                if rel + hlen + length > len(buf):
                    break
                payload = bytes(buf[rel + hlen : rel + hlen + length])
                outcome["close_code"] = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                outcome["close_reason"] = payload[2:].decode(errors="replace")
            frames += 1
            pongs += b0 & 0x0F == 0xA
            pos += hlen + length
        if outcome["close_code"] is not None:
            break
        drop = min(pos - base, len(buf))
        del buf[:drop]
        base += drop
    outcome["bytes_read"] = got
    outcome["frames_seen"] = frames
    outcome["pongs_seen"] = pongs
    return outcome


def scenario_noread(opts: argparse.Namespace, host: str, port: int, path: str) -> dict[str, Any]:
    sock = open_one(host, port, path, opts.io_timeout, opts.rcvbuf)
    msg = frame(0x2, os.urandom(opts.size))
    count = max(1, opts.total // opts.size)
    out = pump(sock, msg, msg, count, time.monotonic() + opts.seconds)
    emit({"event": "sent", **out})
    wait_go()
    seen = read_outcome(sock, opts.drain)
    reset(sock)
    return {**out, "outcome": seen}


def scenario_stream(opts: argparse.Namespace, host: str, port: int, path: str) -> dict[str, Any]:
    sock = open_one(host, port, path, opts.io_timeout, opts.rcvbuf)
    msg = frame(0x2, os.urandom(opts.size))
    emit({"event": "start"})
    out = pump(sock, msg, msg, opts.count, time.monotonic() + opts.seconds)
    emit({"event": "sent", **out})
    wait_go()
    reset(sock)
    return out


SCENARIOS = {
    "resets": scenario_resets,
    "pings": scenario_pings,
    "fragments": scenario_fragments,
    "noread": scenario_noread,
    "stream": scenario_stream,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=float, default=300.0, help="the whole run ends (SIGALRM) after this")
    parser.add_argument("--io-timeout", type=float, default=15.0, help="connect and handshake timeout per socket")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--frame", type=int, default=128 * 1024, help="resets: payload length the header declares")
    parser.add_argument("--send", type=int, default=64 * 1024, help="resets: payload bytes actually sent")
    parser.add_argument("--count", type=int, default=500_000, help="pings, fragments or messages to send")
    parser.add_argument("--payload", type=int, default=0, help="pings: payload bytes per ping (<= 125)")
    parser.add_argument("--size", type=int, default=64 * 1024, help="noread/stream: bytes per message")
    parser.add_argument("--total", type=int, default=100 * 1024 * 1024, help="noread: bytes of messages at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="sending stops after this")
    parser.add_argument("--drain", type=float, default=2.0, help="noread: seconds spent reading at the end")
    parser.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF of the connection (0: the system's)")
    opts = parser.parse_args()
    if not 0 <= opts.payload <= 125:
        parser.error("--payload must be 0..125 (a control frame)")
    signal.alarm(max(1, int(opts.timeout)))  # default action: the process ends
    host, port, path = parse_url(opts.url)
    emit({"result": SCENARIOS[opts.scenario](opts, host, port, path)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
