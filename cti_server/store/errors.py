"""Errors of store operations that a caller turns into an answer (400, 404, 409) naming the field."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's expected errors."""


class InvalidField(StoreError):
    """A value that cannot be stored; ``field`` names it (an HTTP 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Conflict(StoreError):
    """A value that clashes with an existing row, like a duplicate name (an HTTP 409)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(StoreError):
    """No ``kind`` row with this id (or name) is visible to the caller (an HTTP 404)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key!r}")
        self.kind = kind
        self.key = key
