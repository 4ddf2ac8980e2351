"""The CRM records of a call center: accounts, contacts and their phone numbers, cases and call logs.

A contact has several phone numbers in ``contact_phones``, each stored in E.164 and indexed by
(call center, number, contact) so a caller-ID lookup is one index-only probe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cti_server.store.base import Base, BigIntKey, CallCenterScoped, new_id, utcnow


class Account(CallCenterScoped, Base):
    """A company or household that contacts and cases belong to."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("call_center_id", "external_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(120), default=None)
    phone: Mapped[str] = mapped_column(String(20), default="")
    website: Mapped[str] = mapped_column(String(200), default="")
    industry: Mapped[str] = mapped_column(String(80), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Contact(CallCenterScoped, Base):
    """A person who calls in; matched to a call by any of the numbers in ``contact_phones``."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("call_center_id", "external_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Declared here without its own index: uq_contacts_call_center_id_external_id starts with it, so a
    # second index on call_center_id alone only costs every insert (migration 0003 drops it).
    call_center_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("call_centers.id", ondelete="CASCADE"), nullable=False
    )
    account_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("accounts.id", ondelete="SET NULL"), index=True, default=None
    )
    external_id: Mapped[str | None] = mapped_column(String(120), default=None)
    first_name: Mapped[str] = mapped_column(String(120), default="")
    last_name: Mapped[str] = mapped_column(String(120), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    title: Mapped[str] = mapped_column(String(120), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactPhone(CallCenterScoped, Base):
    """One phone number of a contact, in E.164 (``number``) with the text it was given as (``raw``)."""

    __tablename__ = "contact_phones"
    __table_args__ = (Index("ix_contact_phones_lookup", "call_center_id", "number", "contact_id"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    # Declared here without its own index: ix_contact_phones_lookup starts with it (cheaper imports).
    call_center_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("call_centers.id", ondelete="CASCADE"), nullable=False
    )
    contact_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(16), default="other")
    """mobile, work, home or other."""
    raw: Mapped[str] = mapped_column(String(64), default="")


class Case(CallCenterScoped, Base):
    """A support case, optionally about a contact and its account."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("call_center_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("contacts.id", ondelete="SET NULL"), index=True, default=None
    )
    account_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("accounts.id", ondelete="SET NULL"), index=True, default=None
    )
    owner_user_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    subject: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[str] = mapped_column(String(16), default="medium")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class CallLog(CallCenterScoped, Base):
    """A call activity on a contact or case: direction, parties, times, disposition, notes and links.

    ``customer_number`` (E.164) is indexed so a call left unmatched stays findable by number.
    """

    __tablename__ = "call_logs"
    __table_args__ = (Index("ix_call_logs_customer", "call_center_id", "customer_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    """The SIP Call-ID (or internal call id) the log is about."""
    direction: Mapped[str] = mapped_column(String(8))
    """inbound or outbound."""
    from_number: Mapped[str] = mapped_column(String(64), default="")
    to_number: Mapped[str] = mapped_column(String(64), default="")
    customer_number: Mapped[str] = mapped_column(String(20), default="")
    contact_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("contacts.id", ondelete="SET NULL"), index=True, default=None
    )
    case_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("cases.id", ondelete="SET NULL"), index=True, default=None
    )
    agent_user_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    disposition: Mapped[str] = mapped_column(String(32), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    recording_url: Mapped[str] = mapped_column(String(500), default="")
    transcript_url: Mapped[str] = mapped_column(String(500), default="")
    screen_pop: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The screen-pop result that rode on the call (match kind, record ids, late flag)."""
