"""Ready-made handlers served by the CLI (``--app NAME``)."""

from __future__ import annotations

from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.handler import Handler


class EchoApp(Handler):
    """Answers every text message with the same text and every binary message with the same bytes."""

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        conn.send(message)


APPS: dict[str, type[Handler]] = {"echo": EchoApp}
