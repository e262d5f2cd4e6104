"""An event loop thread: one loop owns every socket and timer of the servers a runtime starts from the Python API
or the C ABI (no thread per connection). Each :class:`~snow_rt_py.runtime.runtime.Runtime` starts its own on first
use; the threads are daemons."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (faster sockets), else asyncio's; SNOW_RT_PY_NO_UVLOOP=1 forces asyncio."""
    if not os.environ.get("SNOW_RT_PY_NO_UVLOOP"):
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
        except ImportError:  # pragma: no cover - uvloop is a declared dependency on Linux
            pass
    return asyncio.new_event_loop()


class LoopThread:
    """A daemon thread running an event loop forever."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(ready,), name="snow-loop", daemon=True)
        self.thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (must not be called from the loop thread)."""
        if threading.current_thread() is self.thread:
            coro.close()  # never awaited: close it so no "coroutine was never awaited" warning follows
            raise RuntimeError(
                "this call waits for the event loop and cannot be made from the loop thread (a callback with "
                "workers=0); call it from another thread or run the server with workers >= 1"
            )
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        if timeout is not None:
            return fut.result(timeout)
        while True:  # no waiting forever for a loop that was stopped meanwhile (another thread closed it)
            try:
                return fut.result(0.5)
            except concurrent.futures.TimeoutError:
                if not self.thread.is_alive():
                    fut.cancel()
                    raise RuntimeError("the event loop stopped before the call could run") from None

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the loop, wait up to ``timeout`` s for the thread, and close the loop. Idempotent."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()
