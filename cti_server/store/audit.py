"""The audit log of admin changes: who did what to which record, written in the change's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cti_server.store.base import Base, BigIntKey, utcnow


class AuditEntry(Base):
    """One admin change. ``call_center_id`` has no foreign key so history outlives a deleted call center."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(36))
    actor_name: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(36))
    call_center_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a user, an API key, or the command line (``kind="cli"``)."""

    kind: str
    id: str
    name: str


CLI_ACTOR = Actor("cli", "cli", "cti-server admin")


def record_audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_kind: str,
    target_id: str,
    call_center_id: str | None = None,
    **details: Any,
) -> AuditEntry:
    """Add an audit entry to ``session``; it commits (or rolls back) with the change it describes."""
    entry = AuditEntry(
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_name=actor.name,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        call_center_id=call_center_id,
        details=details,
    )
    session.add(entry)
    return entry
