"""Exceptions the runtime raises to the program (the Python API; the C ABI maps them to error codes)."""

from __future__ import annotations


class SnowError(Exception):
    """Base class of every error the runtime raises to its caller."""


class ConnectionClosedError(SnowError):
    """The connection has ended (or was never accepted); nothing was sent."""


class ServerStartError(SnowError):
    """The server could not start: the address is in use, a TLS file is missing or invalid..."""


class InvalidArgumentError(SnowError, ValueError):
    """An argument is out of range or of the wrong type (e.g. a close code that may not be sent)."""


class InvalidUtf8Error(InvalidArgumentError):
    """Text given as bytes is not valid UTF-8 (the message says where); nothing was sent."""


class QueueFullError(SnowError):
    """The connection's outbound queue is full (a slow consumer) and the policy dropped the message."""
