"""Screen-pop tests run on SQLite and PostgreSQL through the store fixtures of tests/store/backends.py."""

from tests.screenpop.fixtures import call_center, directory
from tests.store.backends import postgres_url, sqlite_store, sqlite_template, store

__all__ = ["call_center", "directory", "postgres_url", "sqlite_store", "sqlite_template", "store"]
