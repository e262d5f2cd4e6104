"""HTTP header collection: case-insensitive lookup, original order and case kept, repeats preserved."""

from __future__ import annotations

from collections.abc import Iterator


class Headers:
    """An ordered multi-map of HTTP headers.

    Lookups ignore ASCII case (``headers["sec-websocket-key"]`` finds ``Sec-WebSocket-Key``); iteration yields
    the names as the client spelled them. A repeated header keeps every value (``get_all``); ``get`` and
    ``[]`` return the values of a repeated header joined with ``", "`` (RFC 9110 §5.3).

    A request has a handful of headers and every connection keeps its own, so they are stored as one list of
    ``(name, value)`` pairs and searched linearly: far less memory than an index per connection.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items or ():
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append one header (keeps any earlier value of the same name)."""
        self._items.append((name, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name`` (repeated values joined by ``", "``), or ``default``."""
        values = self.get_all(name)
        if not values:
            return default
        return values[0] if len(values) == 1 else ", ".join(values)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in arrival order (empty list if absent)."""
        key = name.lower()
        return [value for item, value in self._items if item.lower() == key]

    def items(self) -> list[tuple[str, str]]:
        """All ``(name, value)`` pairs in arrival order, names as sent."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(item.lower() == key for item, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self.items() == other.items()

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"
