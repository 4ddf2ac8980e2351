"""Admin operations on the directory: call centers, users, membership and DIDs, each one audited.

Every function validates its input (``InvalidField`` naming the field), writes the change and its
``audit_log`` entry in one transaction and commits. The REST admin API and ``cti-server admin`` both
call these, so the rules (one call center per user, admins in none, E.164 DIDs) live in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import phonenumbers
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.store.audit import Actor, record_audit
from cti_server.store.base import utcnow
from cti_server.store.credentials import end_sessions_of, set_sip_password
from cti_server.store.errors import Conflict, InvalidField, NotFound
from cti_server.store.tenancy import RECORDING_POLICIES, ROLES, CallCenter, Did, Membership, User

MIN_PASSWORD_LENGTH = 8
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@+")


def check_name(field: str, value: str, limit: int = 120) -> str:
    """``value`` stripped, or InvalidField when it is empty or longer than ``limit``."""
    value = value.strip()
    if not value:
        raise InvalidField(field, "must not be empty")
    if len(value) > limit:
        raise InvalidField(field, f"must be at most {limit} characters")
    return value


def check_region(value: str) -> str:
    """An ISO 3166-1 region phonenumbers knows ("US", "GB"), upper-cased."""
    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidField("phone_region", f"not a region code phonenumbers knows: {value!r}")
    return region


def check_recording_policy(value: str) -> str:
    """One of RECORDING_POLICIES."""
    if value not in RECORDING_POLICIES:
        raise InvalidField("recording_policy", f"expected one of {', '.join(RECORDING_POLICIES)}")
    return value


def check_role(value: str) -> str:
    """One of ROLES."""
    if value not in ROLES:
        raise InvalidField("role", f"expected one of {', '.join(ROLES)}")
    return value


def check_username(field: str, value: str) -> str:
    """A login or SIP user name: 1-80 letters, digits and ``._-@+``."""
    value = check_name(field, value, 80)
    if not set(value) <= _USERNAME_CHARS:
        raise InvalidField(field, "may hold only letters, digits and . _ - @ +")
    return value


def check_password(field: str, value: str) -> str:
    """A password of at least MIN_PASSWORD_LENGTH characters."""
    if len(value) < MIN_PASSWORD_LENGTH:
        raise InvalidField(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    return value


def e164(number: str, region: str, field: str = "number") -> str:
    """``number`` in E.164, read with ``region`` when it has no country code; InvalidField if impossible."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        raise InvalidField(field, f"not a phone number: {number!r}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidField(field, f"not a possible phone number: {number!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def get_call_center(db: AsyncSession, key: str) -> CallCenter:
    """The call center with id or name ``key`` (visible to ``db``), else NotFound."""
    found = await db.scalar(select(CallCenter).where(or_(CallCenter.id == key, CallCenter.name == key)))
    if found is None:
        raise NotFound("call center", key)
    return found


async def get_user(db: AsyncSession, key: str) -> User:
    """The user with id or username ``key`` (visible to ``db``), else NotFound."""
    found = await db.scalar(select(User).where(or_(User.id == key, User.username == key)))
    if found is None:
        raise NotFound("user", key)
    return found


async def _commit(db: AsyncSession, field: str, message: str) -> None:
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise Conflict(field, message) from None


async def create_call_center(
    db: AsyncSession,
    actor: Actor,
    name: str,
    phone_region: str = "US",
    recording_policy: str = "none",
    screen_pop_rules: dict[str, Any] | None = None,
) -> CallCenter:
    """Create a call center; Conflict if the name is taken."""
    call_center = CallCenter(
        name=check_name("name", name),
        phone_region=check_region(phone_region),
        recording_policy=check_recording_policy(recording_policy),
        screen_pop_rules=screen_pop_rules or {},
    )
    if await db.scalar(select(CallCenter.id).where(CallCenter.name == call_center.name)):
        raise Conflict("name", f"a call center named {call_center.name!r} exists")
    db.add(call_center)
    await db.flush()
    record_audit(db, actor, "call_center.create", "call_center", call_center.id, call_center.id,
                 name=call_center.name, phone_region=call_center.phone_region)
    await _commit(db, "name", f"a call center named {call_center.name!r} exists")
    return call_center


async def update_call_center(db: AsyncSession, actor: Actor, call_center: CallCenter,
                             **changes: Any) -> CallCenter:
    """Change ``name``, ``phone_region``, ``recording_policy`` and/or ``screen_pop_rules``."""
    checks: dict[str, Callable[[Any], Any]] = {
        "name": lambda v: check_name("name", v),
        "phone_region": check_region,
        "recording_policy": check_recording_policy,
        "screen_pop_rules": lambda v: v,
    }
    db.add(call_center)  # attach it if it was loaded by another session
    applied: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in checks:
            raise InvalidField(key, "cannot be changed")
        applied[key] = checks[key](value)
        setattr(call_center, key, applied[key])
    record_audit(db, actor, "call_center.update", "call_center", call_center.id, call_center.id, **applied)
    await _commit(db, "name", "a call center with this name exists")
    return call_center


async def delete_call_center(db: AsyncSession, actor: Actor, call_center: CallCenter) -> None:
    """Delete a call center with its DIDs, CRM records and keys; its members become unassigned."""
    record_audit(db, actor, "call_center.delete", "call_center", call_center.id, call_center.id,
                 name=call_center.name)
    await db.delete(call_center)
    await db.commit()


async def create_user(
    db: AsyncSession,
    actor: Actor,
    username: str,
    role: str,
    password_hash: str | None = None,
    display_name: str = "",
    email: str = "",
    sip: tuple[str, str, str] | None = None,
) -> User:
    """Create a user; ``password_hash`` is argon2id (hash it with PasswordHashing first).

    ``sip`` is ``(sip_username, realm, sip_password)`` for a desk phone; only the HA1 hashes are kept.
    """
    user = User(username=check_username("username", username), role=check_role(role),
                password_hash=password_hash, display_name=display_name.strip()[:120],
                email=email.strip()[:254])
    if sip is not None:
        set_sip_password(user, check_username("sip_username", sip[0]), sip[1], sip[2])
    if await db.scalar(select(User.id).where(User.username == user.username)):
        raise Conflict("username", f"username {user.username!r} is taken")
    if sip is not None and await db.scalar(select(User.id).where(User.sip_username == user.sip_username)):
        raise Conflict("sip_username", f"SIP username {user.sip_username!r} is taken")
    db.add(user)
    await db.flush()
    record_audit(db, actor, "user.create", "user", user.id, None, username=user.username, role=user.role)
    await _commit(db, "username", f"username {user.username!r} is taken")
    return user


async def update_user(db: AsyncSession, actor: Actor, user: User, **changes: Any) -> User:
    """Change ``display_name``, ``email``, ``role``, ``active``, ``password_hash`` and/or ``sip``.

    A new password, deactivation or a role change ends the user's sessions; becoming admin ends their
    membership (admins are in no call center).
    """
    db.add(user)  # attach it if it was loaded by another session
    audited: dict[str, Any] = {}
    logout = False
    for key, value in changes.items():
        if key == "display_name":
            user.display_name = str(value).strip()[:120]
        elif key == "email":
            user.email = str(value).strip()[:254]
        elif key == "role":
            user.role = check_role(value)
            logout = True
            if user.role == "admin":
                await db.execute(delete(Membership).where(Membership.user_id == user.id))
        elif key == "active":
            user.active = bool(value)
            logout = logout or not user.active
        elif key == "password_hash":
            user.password_hash = value
            logout = True
            audited[key] = "(changed)"
            continue
        elif key == "sip":
            sip_username, realm, sip_password = value
            set_sip_password(user, check_username("sip_username", sip_username), realm, sip_password)
            audited[key] = sip_username
            continue
        else:
            raise InvalidField(key, "cannot be changed")
        audited[key] = value
    if logout:
        await end_sessions_of(db, user.id)
    record_audit(db, actor, "user.update", "user", user.id, None, **audited)
    await _commit(db, "sip_username", "SIP username is taken")
    return user


async def delete_user(db: AsyncSession, actor: Actor, user: User) -> None:
    """Delete a user with their membership and sessions."""
    record_audit(db, actor, "user.delete", "user", user.id, None, username=user.username)
    await db.delete(user)
    await db.commit()


async def membership_of(db: AsyncSession, user_id: str) -> Membership | None:
    """The membership row of ``user_id``, if they are in a call center."""
    found: Membership | None = await db.get(Membership, user_id)
    return found


async def assign(db: AsyncSession, actor: Actor, user: User, call_center: CallCenter) -> str | None:
    """Make ``user`` a member of ``call_center``, moving them out of any other; returns where they were."""
    if user.role == "admin":
        raise InvalidField("user_id", "admins are in no call center")
    current = await membership_of(db, user.id)
    previous = current.call_center_id if current is not None else None
    if previous == call_center.id:
        return previous
    if current is None:
        db.add(Membership(user_id=user.id, call_center_id=call_center.id, assigned_by=actor.name))
    else:
        current.call_center_id = call_center.id
        current.assigned_by = actor.name
        current.assigned_at = utcnow()
    record_audit(db, actor, "membership.assign", "user", user.id, call_center.id,
                 username=user.username, call_center=call_center.name, previous_call_center_id=previous)
    await db.commit()
    return previous


async def unassign(db: AsyncSession, actor: Actor, user: User) -> str | None:
    """Take ``user`` out of their call center; returns which one (None if they were in none)."""
    current = await membership_of(db, user.id)
    if current is None:
        return None
    previous = current.call_center_id
    await db.delete(current)
    record_audit(db, actor, "membership.unassign", "user", user.id, previous, username=user.username)
    await db.commit()
    return previous


async def add_did(db: AsyncSession, actor: Actor, call_center: CallCenter, number: str,
                  description: str = "") -> Did:
    """Add a DID to ``call_center``, normalized to E.164 with the call center's region."""
    did = Did(call_center_id=call_center.id, number=e164(number, call_center.phone_region),
              description=description.strip()[:200])
    if await db.scalar(select(Did.id).where(Did.number == did.number)):
        raise Conflict("number", f"DID {did.number} is already in use")
    db.add(did)
    await db.flush()
    record_audit(db, actor, "did.create", "did", did.id, call_center.id, number=did.number)
    await _commit(db, "number", f"DID {did.number} is already in use")
    return did


async def remove_did(db: AsyncSession, actor: Actor, did: Did) -> None:
    """Remove a DID (calls to it are no longer routed to its call center)."""
    record_audit(db, actor, "did.delete", "did", did.id, did.call_center_id, number=did.number)
    await db.delete(did)
    await db.commit()
