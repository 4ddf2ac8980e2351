"""Fixtures of the store tests (defined in tests/store/backends.py so other packages can import them)."""

from tests.store.backends import postgres_url, sqlite_store, sqlite_template, store

__all__ = ["postgres_url", "sqlite_store", "sqlite_template", "store"]
