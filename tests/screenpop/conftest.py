"""Store fixtures on SQLite and PostgreSQL for every screen-pop test (defined in fixtures.py)."""

from tests.screenpop.fixtures import (  # noqa: F401
    call_center,
    postgres_url,
    sqlite_template,
    store,
    store_url,
)
