"""The CRM store as the screen pop's contact directory: one indexed probe per caller number.

``contact_phones`` is indexed on (call_center_id, number, contact_id), so the match is an index range
scan whatever the size of the table; the join to ``contacts`` and ``accounts`` is by primary key.
Queries carry an explicit call-center filter (no ORM unit of work on the call path): this module is
the one place the lookup reads the store.

The number probe is the hot path, so it skips SQLAlchemy's connection pool (whose checkout pings and
whose return rolls back: extra round trips) and runs the query compiled once, straight on a driver:
``SqliteReader`` keeps one sqlite3 connection on one worker thread (a lookup is one thread hop instead
of five through aiosqlite), ``PostgresReader`` an asyncpg pool of its own (a lookup is one round trip).
Other stores, and in-memory SQLite, use the engine.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import asyncpg
import structlog
from sqlalchemy import bindparam, or_, select

from cti_server.screenpop.lookup import CallCenterProfile, UnknownCallCenter
from cti_server.screenpop.rules import ContactMatch, RulesError, ScreenPopRules
from cti_server.store import Store
from cti_server.store.models import Account, CallCenter, Contact, ContactPhone

log = structlog.get_logger(__name__)

_MATCH_QUERY = (
    select(
        Contact.id,
        Contact.first_name,
        Contact.last_name,
        Contact.email,
        Contact.account_id,
        Account.name,
        ContactPhone.number,
        ContactPhone.kind,
    )
    .select_from(ContactPhone)
    .join(Contact, Contact.id == ContactPhone.contact_id)
    .outerjoin(Account, Account.id == Contact.account_id)
)


def display_name(first_name: str, last_name: str, email: str = "") -> str:
    """How a contact is shown in a pop: "First Last", else the e-mail, else "(no name)"."""
    name = f"{first_name} {last_name}".strip()
    return name or email or "(no name)"


_NUMBER_QUERY = (
    _MATCH_QUERY.where(
        ContactPhone.call_center_id == bindparam("call_center_id"), ContactPhone.number == bindparam("number")
    )
    .order_by(ContactPhone.contact_id)
    .limit(bindparam("row_limit"))
)


class Reader(Protocol):
    """Runs one compiled query with positional parameters and returns its rows."""

    async def fetch(self, sql: str, parameters: list[Any]) -> Sequence[Sequence[Any]]: ...

    async def close(self) -> None: ...


class SqliteReader:
    """One read-only sqlite3 connection on one worker thread (WAL: never blocked by the writer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="screenpop-sqlite")
        self._connection: sqlite3.Connection | None = None

    def _run(self, sql: str, parameters: list[Any]) -> list[Any]:
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, check_same_thread=False)
            self._connection.execute("PRAGMA query_only = ON")
            self._connection.execute("PRAGMA busy_timeout = 1000")
        return self._connection.execute(sql, parameters).fetchall()

    async def fetch(self, sql: str, parameters: list[Any]) -> Sequence[Sequence[Any]]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, sql, parameters)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)


class PostgresReader:
    """An asyncpg pool for lookups only; connections go back without a reset query."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def fetch(self, sql: str, parameters: list[Any]) -> Sequence[Sequence[Any]]:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=1, max_size=self.size, reset=_no_reset
                    )
        rows: list[Any] = await self._pool.fetch(sql, *parameters)
        return rows

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Lookups leave no session state behind (no transaction, no SET): skip asyncpg's RESET ALL trip."""


class StoreContactDirectory:
    """``ContactDirectory`` over the CRM store (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        dialect = store.engine.dialect
        compiled = _NUMBER_QUERY.compile(dialect=dialect)
        self._sql = str(compiled)
        self._parameter_order: list[str] = list(compiled.positiontup or [])
        self._parameter_defaults: dict[str, Any] = dict(compiled.params)  # e.g. SQLite's OFFSET 0
        self._reader_instance: Reader | None = None
        self._reader_decided = False

    def _reader(self) -> Reader | None:
        if self._reader_decided:
            return self._reader_instance
        self._reader_decided = True
        url = self.store.url
        backend, driver = url.get_backend_name(), url.get_driver_name()
        if backend == "sqlite" and url.database not in (None, "", ":memory:") and self._parameter_order:
            self._reader_instance = SqliteReader(url.database)
        elif backend == "postgresql" and driver == "asyncpg" and self._parameter_order:
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._reader_instance = PostgresReader(dsn, max(2, self.store.config.pool_size))
        return self._reader_instance

    async def close(self) -> None:
        """Close the lookup's own connections (app cleanup does this); later lookups use the engine."""
        reader, self._reader_instance = self._reader_instance, None
        self._reader_decided = True
        if reader is not None:
            await reader.close()

    async def profile(self, call_center: str) -> CallCenterProfile:
        """The call center by id or name: its id, phone region and screen-pop rules."""
        query = select(CallCenter.id, CallCenter.phone_region, CallCenter.screen_pop_rules).where(
            or_(CallCenter.id == call_center, CallCenter.name == call_center)
        )
        async with self.store.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            raise UnknownCallCenter(call_center)
        try:
            rules = ScreenPopRules.from_mapping(row.screen_pop_rules)
        except RulesError as exc:
            # Rules are validated when an admin saves them; a bad stored value falls back to the defaults.
            log.warning("screenpop_rules_invalid", call_center=row.id, field=exc.field, reason=exc.reason)
            rules = ScreenPopRules()
        return CallCenterProfile(id=row.id, region=row.phone_region or "US", rules=rules)

    async def find_by_number(self, call_center_id: str, number: str, limit: int) -> list[ContactMatch]:
        """Up to ``limit`` distinct contacts of ``call_center_id`` with ``number`` (E.164)."""
        # A contact may list one number twice (work and mobile): fetch twice the limit.
        values = {
            **self._parameter_defaults,
            "call_center_id": call_center_id,
            "number": number,
            "row_limit": limit * 2,
        }
        reader = self._reader()
        if reader is not None:
            rows: Sequence[Sequence[Any]] = await reader.fetch(
                self._sql, [values[name] for name in self._parameter_order]
            )
        else:
            async with self.store.engine.connect() as connection:
                rows = (
                    await connection.execute(
                        _NUMBER_QUERY,
                        {"call_center_id": call_center_id, "number": number, "row_limit": limit * 2},
                    )
                ).all()
        matches: dict[str, ContactMatch] = {}
        for row in rows:
            if row[0] in matches:
                continue
            matches[row[0]] = ContactMatch(
                contact_id=row[0],
                display_name=display_name(row[1], row[2], row[3]),
                matched_number=row[6],
                number_label=row[7],
                email=row[3] or None,
                account_id=row[4],
                account_name=row[5],
            )
            if len(matches) == limit:
                break
        return list(matches.values())
