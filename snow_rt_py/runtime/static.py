"""Serving files for plain HTTP GETs on the WebSocket port (``static_dir``), e.g. the chat page of the examples.

Only files inside ``static_dir`` are served (the resolved path must stay inside it, so ``..`` and symlinks
pointing out are refused with 404); ``/`` serves ``static_index``. Files are small pages and scripts, read
whole on the event loop; anything over ``MAX_STATIC_FILE`` is refused with 404 rather than blocking the loop.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

MAX_STATIC_FILE = 1024 * 1024


def lookup(static_dir: str | Path, index: str, target: str) -> tuple[int, bytes, str]:
    """Find the file a request-target names.

    Returns:
        ``(status, body, content_type)``: 200 with the file, or 404 with a plain-text body.
    """
    root = Path(static_dir).resolve()
    path = unquote(urlsplit(target).path)
    relative = path.lstrip("/") or index
    try:
        candidate = (root / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        candidate = None
    if candidate is None or not candidate.is_relative_to(root) or not candidate.is_file():
        return 404, b"Not found.\n", "text/plain; charset=utf-8"
    try:
        if candidate.stat().st_size > MAX_STATIC_FILE:
            return 404, b"Not found.\n", "text/plain; charset=utf-8"
        body = candidate.read_bytes()
    except OSError:
        return 404, b"Not found.\n", "text/plain; charset=utf-8"
    content_type = mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
        content_type += "; charset=utf-8"
    return 200, body, content_type
