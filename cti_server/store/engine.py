"""The store's engine and session factory, with call-center scoping enforced inside the ORM.

``Store(config)`` builds the async engine (no I/O yet). ``Store.session()`` is an unscoped session for
the system and admins; ``Store.tenant_session(call_center_id)`` is a session whose every ORM SELECT,
UPDATE and DELETE on a ``CallCenterScoped`` table (and on ``CallCenter`` itself, and on ``User``
through membership) is filtered to that call center, and whose flush refuses rows of another call
center. Scoping therefore holds for every query a handler writes, not just the ones that remember a
WHERE clause.

SQLite connections run in WAL mode with foreign keys on and a busy timeout, so readers never wait
for the writer and cascades behave as on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.pool import StaticPool

from cti_server.config import StoreConfig
from cti_server.store.base import CallCenterScoped
from cti_server.store.tenancy import CallCenter, Membership, User

log = structlog.get_logger(__name__)

SCOPE_KEY = "call_center_id"
"""``Session.info`` key holding the call center a tenant session is limited to."""

_NO_CALL_CENTER = ""
"""Scope of a user in no call center: matches no row."""


class ScopeViolation(PermissionError):
    """A tenant session was asked to write a row that belongs to another call center."""


class TenantSession(Session):
    """The sync session behind every ``AsyncSession`` of the store; scoping hooks are attached to it."""


@event.listens_for(TenantSession, "do_orm_execute")
def _limit_to_call_center(state: ORMExecuteState) -> None:
    if SCOPE_KEY not in state.session.info or state.is_column_load:
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    call_center_id: str = state.session.info[SCOPE_KEY]
    state.statement = state.statement.options(
        with_loader_criteria(
            CallCenterScoped,
            lambda cls: cls.call_center_id == call_center_id,
            include_aliases=True,
        ),
        with_loader_criteria(CallCenter, lambda cls: cls.id == call_center_id, include_aliases=True),
        with_loader_criteria(
            User,
            lambda cls: cls.id.in_(
                select(Membership.user_id).where(Membership.call_center_id == call_center_id)
            ),
            include_aliases=True,
        ),
    )


@event.listens_for(TenantSession, "before_flush")
def _check_new_rows(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    if SCOPE_KEY not in session.info:
        return
    call_center_id: str = session.info[SCOPE_KEY]
    for obj in [*session.new, *session.dirty]:
        if isinstance(obj, CallCenterScoped):
            if obj.call_center_id is None and obj in session.new:
                obj.call_center_id = call_center_id
            elif obj.call_center_id != call_center_id:
                raise ScopeViolation(
                    f"{type(obj).__name__} of call center {obj.call_center_id!r} written from a session "
                    f"scoped to {call_center_id!r}"
                )


class Store:
    """The store of one server process: engine, session factory, open (migrate) and close."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.url: URL = normalize_url(config.url)
        self.engine: AsyncEngine = _create_engine(self.url, config)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TenantSession
        )

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store (migrated automatically at start)."""
        return self.url.get_backend_name() == "sqlite"

    def session(self) -> AsyncSession:
        """An unscoped session: sees every call center (system tasks, admins, the CLI)."""
        return self.sessions()

    def tenant_session(self, call_center_id: str | None) -> AsyncSession:
        """A session limited to ``call_center_id``; ``None`` (a user in no call center) sees no rows."""
        return self.sessions(info={SCOPE_KEY: call_center_id or _NO_CALL_CENTER})

    async def open(self, migrate: bool | None = None) -> None:
        """Create the SQLite directory, then migrate to head (default: SQLite only) or check the revision."""
        self.ensure_directory()
        from cti_server.store.migrate import check_revision, upgrade

        if self.is_sqlite if migrate is None else migrate:
            await upgrade(self.engine)
        else:
            await check_revision(self.engine)
        log.info("store_opened", backend=self.url.get_backend_name(), database=self.url.database)

    def ensure_directory(self) -> None:
        """Create the directory of a SQLite file (``var/`` by default) if it is missing."""
        database = self.url.database
        if self.is_sqlite and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def normalize_url(url: str) -> URL:
    """Parse ``url``; a bare ``postgresql://`` gets the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


def _create_engine(url: URL, config: StoreConfig) -> AsyncEngine:
    if url.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {}
        if url.database in (None, "", ":memory:"):
            # One shared connection, or every checkout would see a different empty database.
            kwargs["poolclass"] = StaticPool
        engine = create_async_engine(url, echo=config.echo, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=config.echo, pool_size=config.pool_size, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
