"""Actors and the scheduler that runs them.

Rules:

* An actor is a pid, a mailbox and a behaviour ``fn(tag, payload)`` that runs **one message at a time**, in the
  order the messages were delivered. Pids are never reused.
* Messages carry a :class:`Tag`. WebSocket events use reserved tags (CONNECT, TEXT, BINARY, DISCONNECT); messages
  from other actors or threads always travel as INFO and exit signals as EXIT, so a program's message can never be
  taken for a WebSocket event (snow-rt's ``WS_TEXT_TAG == JOB_RESULT_TAG`` collision cannot happen here).
* ``workers == 0``: actors run inline on the event loop thread (the fast path; behaviours must not block).
  ``workers >= 1``: a pool of that many threads runs ready actors. An actor is on the run queue at most once, so
  its messages stay sequential; a blocked behaviour holds one worker and delays only its own actor. A ready actor
  runs until its mailbox is empty, 64 messages, or 2 ms, then yields its worker to the next ready actor. With more
  blocked actors than workers, the remaining actors wait in the run queue until a worker frees up (their
  sockets, pings and pongs are still served by the loop meanwhile).
* Links are symmetric. When an actor exits (``exit``), every linked, still-alive actor receives
  ``(Tag.EXIT, ExitSignal(pid, reason))`` as an ordinary message; exit signals do not kill the receiver (all
  actors trap exits), they tell it.
* A behaviour that raises is caught and logged; what happens next is the owner's choice (``on_crash``).
* Pids, the pid -> actor table and links belong to an :class:`ActorTable`, which a
  :class:`~snow_rt_py.runtime.runtime.Runtime` owns; every scheduler of that runtime registers its actors there,
  so ``send``/``link``/``exit`` reach connection actors and plain actors alike.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snow_rt_py import speedups

log = logging.getLogger("snow_rt_py.scheduler")

_BATCH = 64  # messages an actor handles before it yields its worker to the next ready actor...
_SLICE = 0.002  # ... or seconds, whichever comes first: a slow handler must not hold a worker for 64 messages


class Tag(enum.Enum):
    """Reserved mailbox tags; programs' own messages always travel as ``INFO``."""

    CONNECT = "connect"
    TEXT = "text"
    BINARY = "binary"
    DISCONNECT = "disconnect"
    INFO = "info"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class ExitSignal:
    """Delivered to linked actors when an actor exits.

    Attributes:
        pid: the actor that exited.
        reason: why: for a connection actor ``(close_code, close_reason)``; otherwise what ``exit`` was given.
    """

    pid: int
    reason: object


Behaviour = Callable[[Tag, Any], None]


DEAD = 0
"""offer: the actor has exited, the message is dropped."""
QUEUED = 1
"""offer: in the mailbox; the actor is already scheduled or running."""
SCHEDULE = 2
"""offer: in the mailbox and the actor marked running: the caller schedules a run."""
INLINE = 3
"""offer with ``inline_ok``: not queued; the idle actor is marked running and the caller runs the message now, then
calls ``settle()``."""


class PyActorCore:
    """An actor's mailbox, its alive / running marks and the lock that guards them, with the rules that change them.

    The reference implementation of ``_scheduler_core.ActorCore`` (its C twin, the base class of :class:`Actor` when
    the compiled parts are used). Lock discipline, the same in both: the lock is held for each check-and-set below
    and for nothing else; no behaviour ever runs under it.
    """

    __slots__ = ("_lock", "alive", "mailbox", "running")

    def __init__(self) -> None:
        self.mailbox: deque[tuple[Tag, Any]] | None = None  # created on first queued message (saves memory)
        self.alive = True
        self.running = False  # on the run queue, being run, or running a message inline
        self._lock = threading.Lock()

    def offer(self, tag: Tag, payload: Any, inline_ok: bool) -> int:
        """Put a message in the mailbox, or claim the actor to run it inline.

        Args:
            inline_ok: the caller may run the message at once (no workers, on the loop thread).

        Returns:
            :data:`DEAD`, :data:`QUEUED`, :data:`SCHEDULE` or (with ``inline_ok``, for an idle actor with an empty
            mailbox) :data:`INLINE`.
        """
        with self._lock:
            if not self.alive:
                return DEAD
            if inline_ok and not self.running and not self.mailbox:
                self.running = True
                return INLINE
            if self.mailbox is None:
                self.mailbox = deque()
            self.mailbox.append((tag, payload))
            if self.running:
                return QUEUED
            self.running = True
            return SCHEDULE

    def settle(self) -> bool:
        """After a message run inline: True if the actor is idle again, False if messages arrived meanwhile (the
        caller runs them)."""
        with self._lock:
            if self.mailbox:
                return False
            self.running = False
            return True

    def take(self, stop: bool) -> tuple[Tag, Any] | bool | None:
        """The next message of a run: ``(tag, payload)``; None when there is none (the actor is idle again; an
        exited actor's mailbox is dropped); False when ``stop`` and messages remain (reschedule)."""
        with self._lock:
            if not self.alive:
                self.mailbox = None
            if not self.mailbox:
                self.running = False
                return None
            if stop:
                return False
            return self.mailbox.popleft()

    def kill(self) -> bool:
        """The actor exits: no more messages are taken, the mailbox is dropped. True if it was alive."""
        with self._lock:
            if not self.alive:
                return False
            self.alive = False
            self.mailbox = None
            return True

    def pending(self) -> int:
        """Messages in the mailbox."""
        with self._lock:
            return len(self.mailbox) if self.mailbox else 0


_c = speedups.load("snow_rt_py.runtime._scheduler_core")
if TYPE_CHECKING:
    ActorCore = PyActorCore
else:
    ActorCore = PyActorCore if _c is None else _c.ActorCore
    if _c is not None:
        assert (DEAD, QUEUED, SCHEDULE, INLINE) == (_c.DEAD, _c.QUEUED, _c.SCHEDULE, _c.INLINE)

C_SCHEDULER: bool = _c is not None
"""True when Actor's base class is the C one."""


class Actor(ActorCore):
    """One actor: pid, mailbox, sequential behaviour, links. Created by :meth:`Scheduler.spawn`."""

    __slots__ = (  # and the fields of ActorCore: mailbox, alive, running, their lock
        "__weakref__",
        "behaviour",
        "links",
        "on_crash",
        "pid",
        "scheduler",
    )

    def __init__(
        self, pid: int, scheduler: Scheduler, behaviour: Behaviour, on_crash: Callable[[BaseException], None] | None
    ) -> None:
        super().__init__()
        self.pid = pid
        self.scheduler = scheduler
        self.behaviour = behaviour
        self.on_crash = on_crash
        self.links: set[int] | None = None

    def __repr__(self) -> str:
        return f"<Actor pid={self.pid} alive={self.alive} queued={self.pending()}>"


class ActorTable:
    """Pids, the live actors by pid, and their links: what ``send``, ``link`` and ``exit`` act on.

    Every function is safe from any thread. Pids are never reused.
    """

    def __init__(self) -> None:
        self._pids = itertools.count(1)
        self._actors: dict[int, Actor] = {}
        self._lock = threading.Lock()

    def add(
        self, scheduler: Scheduler, behaviour: Behaviour, on_crash: Callable[[BaseException], None] | None
    ) -> Actor:
        """Create and register an actor run by ``scheduler``."""
        with self._lock:
            actor = Actor(next(self._pids), scheduler, behaviour, on_crash)
            self._actors[actor.pid] = actor
        return actor

    def lookup(self, pid: int) -> Actor | None:
        """The live actor with ``pid``, or None."""
        actor = self._actors.get(pid)
        return actor if actor is not None and actor.alive else None

    def send(self, pid: int, message: object) -> bool:
        """Send ``message`` to actor ``pid`` (it receives ``(Tag.INFO, message)``). Safe from any thread.

        Returns:
            True if delivered to a live actor's mailbox, False if no such actor is alive.
        """
        actor = self.lookup(pid)
        return actor is not None and actor.scheduler.deliver(actor, Tag.INFO, message)

    def link(self, pid_a: int, pid_b: int) -> None:
        """Link two actors: when either exits, the other receives an :class:`ExitSignal`.

        Raises:
            LookupError: if either actor is not alive (linking to a dead actor would lose the signal).
        """
        a, b = self.lookup(pid_a), self.lookup(pid_b)
        if a is None or b is None:
            missing = pid_a if a is None else pid_b
            raise LookupError(f"cannot link {pid_a} and {pid_b}: actor {missing} is not alive")
        with self._lock:
            if a.links is None:
                a.links = set()
            if b.links is None:
                b.links = set()
            a.links.add(pid_b)
            b.links.add(pid_a)

    def exit(self, pid: int, reason: object = "normal") -> bool:
        """End actor ``pid``: drop its pending messages and signal every linked actor. Idempotent.

        Returns:
            True if the actor was alive.
        """
        actor = self._actors.get(pid)
        if actor is None:
            return False
        if not actor.kill():
            return False
        with self._lock:
            self._actors.pop(pid, None)
            links, actor.links = actor.links or set(), None
        # The actor is gone: nothing may keep its behaviour (a bound method of a connection, say) alive.
        actor.behaviour = _dead
        actor.on_crash = None
        signal = ExitSignal(pid, reason)
        for other_pid in links:
            other = self._actors.get(other_pid)
            if other is not None:
                with self._lock:
                    if other.links is not None:
                        other.links.discard(pid)
                other.scheduler.deliver(other, Tag.EXIT, signal)
        return True


def _dead(tag: Tag, payload: Any) -> None:
    """The behaviour of an actor that has exited (never called: its mailbox takes nothing)."""


class Scheduler:
    """Runs actors inline on ``loop`` (``workers == 0``) or on ``workers`` threads.

    Args:
        loop: the event loop that owns the sockets (used for inline mode and for cross-thread wake-ups).
        actors: the runtime's actor table, where this scheduler's actors are registered.
        loop_thread_id: ``threading.get_ident()`` of the loop's thread (inline mode runs actors there).
        workers: 0 for inline, else the number of worker threads.
        name: used in thread names and logs.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        actors: ActorTable,
        workers: int = 0,
        name: str = "snow",
        loop_thread_id: int | None = None,
    ) -> None:
        self.loop = loop
        self.actors = actors
        self.workers = workers
        self._loop_thread_id = loop_thread_id
        self._runq: queue.SimpleQueue[Actor | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        for i in range(workers):
            t = threading.Thread(target=self._worker, name=f"{name}-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    # -- actors --------------------------------------------------------------------------------------------

    def spawn(self, behaviour: Behaviour, on_crash: Callable[[BaseException], None] | None = None) -> Actor:
        """Create an actor; it runs when it first receives a message.

        Args:
            behaviour: ``fn(tag, payload)`` called once per message, one at a time.
            on_crash: called (on the actor's thread) with the exception if ``behaviour`` raises; the actor keeps
                running unless ``on_crash`` calls :func:`exit`. Default: log and carry on.

        Returns:
            The new actor.
        """
        return self.actors.add(self, behaviour, on_crash)

    def deliver(self, actor: Actor, tag: Tag, payload: Any) -> bool:
        """Put a message in ``actor``'s mailbox and make sure it will run. Safe from any thread.

        Returns:
            False if the actor has exited (the message is dropped), else True.
        """
        inline_ok = not self.workers and threading.get_ident() == self._loop_thread_id
        verdict = actor.offer(tag, payload, inline_ok)
        if verdict == INLINE:  # an idle actor with an empty mailbox, on the loop thread: run it now
            self._call(actor, tag, payload)
            if not actor.settle():
                self._run(actor, None)  # whatever arrived meanwhile (e.g. a message to itself); then idle
            return True
        if verdict != SCHEDULE:
            return verdict == QUEUED
        if self.workers:
            self._runq.put(actor)
        elif threading.get_ident() == self._loop_thread_id:
            self._run(actor, None)
        else:
            self.loop.call_soon_threadsafe(self._run, actor, None)
        return True

    def _run(self, actor: Actor, limit: int | None) -> bool:
        """Run up to ``limit`` messages of ``actor`` (and, with a limit, for at most ``_SLICE`` seconds once one
        message is done). Returns True if it must be rescheduled."""
        handled = 0
        deadline = 0.0 if limit is None else time.monotonic() + _SLICE
        while True:
            stop = limit is not None and handled > 0 and (handled >= limit or time.monotonic() >= deadline)
            message = actor.take(stop)
            if message is None:
                return False
            if message is False:
                return True
            assert message is not True
            handled += 1
            self._call(actor, *message)

    @staticmethod
    def _call(actor: Actor, tag: Tag, payload: Any) -> None:
        try:
            actor.behaviour(tag, payload)
        except Exception as exc:  # a crash stays inside its actor
            Scheduler._crashed(actor, exc)

    @staticmethod
    def _crashed(actor: Actor, exc: Exception) -> None:
        """``actor``'s behaviour raised ``exc`` (also called by the connection's C part, runtime/_connection_core.c)."""
        if actor.on_crash is not None:
            try:
                actor.on_crash(exc)
            except Exception:
                log.exception("on_crash of actor %d failed", actor.pid)
        else:
            log.error("actor %d crashed", actor.pid, exc_info=exc)

    def _worker(self) -> None:
        while True:
            actor = self._runq.get()
            if actor is None:
                return
            if self._run(actor, _BATCH):
                self._runq.put(actor)

    def close(self) -> None:
        """Stop the worker threads (they finish the message in hand). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._runq.put(None)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every worker thread to end."""
        for t in self._threads:
            t.join(timeout)
