"""Web sessions, integrators' API keys and SIP digest credentials kept in the store.

Session tokens and API keys are 256-bit random strings; only their SHA-256 is stored. An API key reads
``cti_<prefix>_<secret>``: the prefix is public (listed by the admin API, used to find the row), the
whole key is compared by hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.config import SipUserConfig
from cti_server.store.audit import Actor, record_audit
from cti_server.store.base import utcnow
from cti_server.store.engine import Store
from cti_server.store.integrations import ApiKey, WebSession
from cti_server.store.passwords import sip_ha1
from cti_server.store.tenancy import Membership, User

log = structlog.get_logger(__name__)

API_KEY_PREFIX = "cti_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(token: str) -> str:
    """SHA-256 hex of a session token or API key: what the store keeps instead of the secret."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionUser:
    """The user behind a valid session token, with the call center they are in (None: none/admin)."""

    user: User
    call_center_id: str | None
    expires_at: datetime


async def call_center_of(db: AsyncSession, user_id: str) -> str | None:
    """The call center ``user_id`` is a member of, if any."""
    query = select(Membership.call_center_id).where(Membership.user_id == user_id)
    result: str | None = await db.scalar(query)
    return result


async def create_session(db: AsyncSession, user: User, lifetime: int, user_agent: str = "") -> str:
    """Open a session for ``user`` lasting ``lifetime`` seconds; returns the token (never stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Expired sessions of this user are dropped here, so the table stays the size of live sessions.
    await db.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.expires_at <= now))
    db.add(WebSession(token_hash=token_hash(token), user_id=user.id, created_at=now,
                      expires_at=now + timedelta(seconds=lifetime), user_agent=user_agent[:255]))
    user.last_login_at = now
    await db.commit()
    return token


async def user_for_session(db: AsyncSession, token: str) -> SessionUser | None:
    """The active user of an unexpired session ``token``, or None."""
    row = (
        await db.execute(
            select(User, WebSession.expires_at, Membership.call_center_id)
            .join(WebSession, WebSession.user_id == User.id)
            .outerjoin(Membership, Membership.user_id == User.id)
            .where(WebSession.token_hash == token_hash(token))
        )
    ).first()
    if row is None:
        return None
    user, expires_at, call_center_id = row
    if expires_at <= utcnow() or not user.active:
        return None
    return SessionUser(user, call_center_id, expires_at)


async def end_session(db: AsyncSession, token: str) -> bool:
    """Delete the session of ``token``; True if there was one."""
    result = await db.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
    await db.commit()
    return bool(getattr(result, "rowcount", 0))


async def end_sessions_of(db: AsyncSession, user_id: str) -> None:
    """Log ``user_id`` out everywhere (password change, deactivation, move to another call center)."""
    await db.execute(delete(WebSession).where(WebSession.user_id == user_id))


def new_api_key() -> tuple[str, str]:
    """A fresh ``(prefix, key)``; the key is ``cti_<prefix>_<secret>`` with a 256-bit secret."""
    prefix = secrets.token_hex(6)
    return prefix, f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


async def create_api_key(
    db: AsyncSession, actor: Actor, call_center_id: str, name: str = "", role: str = "integrator"
) -> tuple[ApiKey, str]:
    """Create an API key for ``call_center_id``; returns the row and the key, which is shown only now."""
    prefix, key = new_api_key()
    row = ApiKey(call_center_id=call_center_id, name=name, prefix=prefix, key_hash=token_hash(key),
                 role=role, created_by=actor.name)
    db.add(row)
    await db.flush()
    record_audit(db, actor, "api_key.create", "api_key", row.id, call_center_id, name=name, prefix=prefix)
    await db.commit()
    return row, key


async def api_key_for(db: AsyncSession, key: str) -> ApiKey | None:
    """The unrevoked API key row matching ``key`` exactly, or None; notes when it was last used."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = key[len(API_KEY_PREFIX):].partition("_")
    if not prefix or not secret:
        return None
    row = await db.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, token_hash(key)):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        row.last_used_at = now
        await db.commit()
    return row


async def revoke_api_key(db: AsyncSession, actor: Actor, api_key: ApiKey) -> None:
    """Revoke ``api_key`` at once (requests with it get 401 from now on)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        record_audit(db, actor, "api_key.revoke", "api_key", api_key.id, api_key.call_center_id,
                     prefix=api_key.prefix)
    await db.commit()


def set_sip_password(user: User, sip_username: str, realm: str, password: str) -> None:
    """Give ``user`` SIP digest credentials: the RFC 8760 MD5 and SHA-256 HA1 of the password."""
    user.sip_username = sip_username
    user.sip_realm = realm
    user.sip_ha1_md5 = sip_ha1(sip_username, realm, password, "MD5")
    user.sip_ha1_sha256 = sip_ha1(sip_username, realm, password, "SHA-256")


SipCredentialsLookup = Callable[[str], Awaitable[tuple[str, str] | None]]
"""``await lookup(sip_username)`` -> ``(ha1_md5, ha1_sha256)`` or None."""


def sip_credentials_lookup(store: Store, realm: str) -> SipCredentialsLookup:
    """The registrar's digest-credential source (RFC 8760): HA1 pair of an active user in ``realm``.

    Either hash may be "" when only the other was provisioned (a config user given one ha1 only).
    """

    async def sip_credentials(username: str) -> tuple[str, str] | None:
        async with store.session() as db:
            user = await db.scalar(select(User).where(User.sip_username == username))
        if user is None or not user.active or user.sip_realm != realm:
            return None
        return (user.sip_ha1_md5 or "", user.sip_ha1_sha256 or "")

    return sip_credentials


async def import_sip_users(db: AsyncSession, users: Iterable[SipUserConfig], realm: str) -> int:
    """Bring the registrar's configured ``sip.users`` into the store as agents; returns how many changed.

    A user already in the store (matched by SIP username) gets its digest hashes refreshed from the
    configuration; a new one is created with role agent, in no call center and without a web password.
    """
    changed = 0
    for entry in users:
        user = await db.scalar(select(User).where(User.sip_username == entry.username))
        if user is None:
            user = await db.scalar(select(User).where(User.username == entry.username))
        if user is None:
            user = User(username=entry.username, display_name=entry.username, role="agent")
            db.add(user)
            await db.flush()
        before = (user.sip_username, user.sip_realm, user.sip_ha1_md5, user.sip_ha1_sha256)
        if entry.password:
            set_sip_password(user, entry.username, realm, entry.password)
        else:
            user.sip_username, user.sip_realm = entry.username, realm
            user.sip_ha1_md5 = entry.ha1_md5 or None
            user.sip_ha1_sha256 = entry.ha1_sha256 or None
        if (user.sip_username, user.sip_realm, user.sip_ha1_md5, user.sip_ha1_sha256) != before:
            changed += 1
            record_audit(db, Actor("config", "config", "sip.users"), "user.sip_import", "user",
                         user.id, sip_username=entry.username)
    await db.commit()
    if changed:
        log.info("sip_users_imported", changed=changed)
    return changed
