"""Call centers, roles, users, call-center membership and DIDs: who works where, and which numbers ring there.

A call center is what a Salesforce admin knows as one: a name, a default phone region for reading local
numbers, its DIDs, its screen-pop rules, its recording policy and its members. A user is a member of at
most one call center at a time (the primary key of ``call_center_members`` is the user).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cti_server.store.base import Base, CallCenterScoped, new_id, utcnow

ROLES = ("admin", "supervisor", "agent", "integrator")
"""The four roles; ``admin`` is the only one that is not tied to a call center."""

RECORDING_POLICIES = ("none", "all", "inbound", "outbound", "on_demand")
"""What a call center records: nothing, every call, one direction, or when the agent asks."""


class CallCenter(Base):
    """One call center: a tenant of the store; every CRM row belongs to exactly one."""

    __tablename__ = "call_centers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    phone_region: Mapped[str] = mapped_column(String(2), default="US")
    """ISO 3166-1 alpha-2 region used to read numbers dialled without a country code ("US", "GB")."""
    screen_pop_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Screen-pop rules per match count; their shape is defined by cti_server.screenpop."""
    recording_policy: Mapped[str] = mapped_column(String(16), default="none")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Role(Base):
    """A role name (admin, supervisor, agent, integrator); the rows are written by the first migration."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    description: Mapped[str] = mapped_column(String(200), default="")


class User(Base):
    """A person (or integration account) who logs in to the pages or the API.

    ``password_hash`` is argon2id; the SIP fields hold the RFC 8760 digest hashes
    ``H(sip_username:realm:password)`` for MD5 and SHA-256 so the user's desk phone can REGISTER.
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    role: Mapped[str] = mapped_column(String(16), ForeignKey("roles.name"))
    password_hash: Mapped[str | None] = mapped_column(Text, default=None)
    sip_username: Mapped[str | None] = mapped_column(String(80), unique=True, default=None)
    sip_realm: Mapped[str | None] = mapped_column(String(120), default=None)
    sip_ha1_md5: Mapped[str | None] = mapped_column(String(32), default=None)
    sip_ha1_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class Membership(CallCenterScoped, Base):
    """User ``user_id`` works in call center ``call_center_id``; one row per user at most."""

    __tablename__ = "call_center_members"

    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_by: Mapped[str] = mapped_column(String(120), default="")


class Did(CallCenterScoped, Base):
    """A direct inward dial number (E.164) that routes inbound calls to its call center."""

    __tablename__ = "dids"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
