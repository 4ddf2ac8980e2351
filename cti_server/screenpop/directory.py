"""The CRM store as the screen pop's contact directory: one indexed probe per caller number.

``contact_phones`` is indexed on (call_center_id, number, contact_id), so the match is an index range
scan whatever the size of the table; the join to ``contacts`` and ``accounts`` is by primary key.
Queries go through a plain connection with an explicit call-center filter (no ORM unit of work on the
call path): this module is the one place the lookup reads the store.
"""

from __future__ import annotations

import structlog
from sqlalchemy import or_, select

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


class StoreContactDirectory:
    """``ContactDirectory`` over the CRM store (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
        query = (
            _MATCH_QUERY.where(ContactPhone.call_center_id == call_center_id, ContactPhone.number == number)
            .order_by(ContactPhone.contact_id)
            .limit(limit * 2)  # a contact may list one number twice (work and mobile)
        )
        async with self.store.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
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
