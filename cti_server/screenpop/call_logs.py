"""The call-log writer: when a call ends, its activity is saved on the CRM record it matched.

Subscribes to ``call.ended`` (cti_server/calls publishes the call's JSON snapshot). The contact is, in
order: ``data["contact_id"]`` (an agent picked one); the single match of ``data["screenpop"]`` (the pop
that rode on the call, or the one ``CallScreenPops`` made when it was offered); or, when the call
carried no usable pop, a fresh lookup of the customer's number that finds exactly one contact.
Otherwise the log is left unmatched with the customer's number in E.164, so
``GET /api/v1/call-logs?number=`` still finds it and an agent can link it later.

Keys read from the event data (all optional but ``call_id``): ``call_id``, ``direction``, ``caller``
(``{"number": ...}`` or text), ``called_number``, ``call_center`` (id or name; ``Event.call_center``
wins), ``timestamps`` (``offered``/``answered``/``ended``), ``end_reason``/``reason``, ``disposition``,
``screenpop``, ``contact_id``, ``case_id``, ``agent_user_id``, ``notes``, ``recording_url``,
``transcript_url``. A call ending twice is logged once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from cti_server.events import Event, EventBus, Subscription
from cti_server.screenpop.lookup import CallCenterProfile, ContactDirectory, UnknownCallCenter
from cti_server.screenpop.phone import try_normalize
from cti_server.screenpop.rules import RulesError, ScreenPop
from cti_server.store import Store
from cti_server.store.models import CallLog, Case, Contact, User

log = structlog.get_logger(__name__)

_EPOCH_2001 = 978307200.0
"""Times before this are not wall-clock epoch seconds (a monotonic clock): placed relative to the end."""


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _caller_number(data: dict[str, Any]) -> str:
    caller = data.get("caller")
    if isinstance(caller, dict):
        return str(caller.get("number") or "")
    return str(caller or data.get("from") or "")


def call_times(data: dict[str, Any], now: datetime) -> tuple[datetime, datetime | None, datetime]:
    """(started, answered, ended) of a call from its ``timestamps``, whatever clock they were read on."""
    stamps = data.get("timestamps") if isinstance(data.get("timestamps"), dict) else {}
    assert isinstance(stamps, dict)
    ended_raw = stamps.get("ended")
    offered_raw = stamps.get("offered", ended_raw)
    answered_raw = stamps.get("answered")

    def place(value: Any) -> datetime | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if value > _EPOCH_2001:
            return datetime.fromtimestamp(value, UTC)
        if isinstance(ended_raw, int | float) and not isinstance(ended_raw, bool):
            return now - timedelta(seconds=max(0.0, float(ended_raw) - value))
        return None

    ended = place(ended_raw) or now
    return place(offered_raw) or ended, place(answered_raw), ended


class CallLogWriter:
    """Writes one call log per ended call (``call.ended`` on the bus)."""

    def __init__(
        self,
        store: Store,
        directory: ContactDirectory,
        bus: EventBus,
        pop_for_call: Callable[[str], dict[str, Any] | None] | None = None,
        profile: Callable[[str], Awaitable[CallCenterProfile]] | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        # The lookup's cached profiles (ScreenPopLookup.profile) when given: no store query per call.
        self.profile = profile if profile is not None else directory.profile
        self.bus = bus
        self.pop_for_call = pop_for_call
        self._subscription: Subscription | None = None
        self.stats: dict[str, int] = {"written": 0, "matched": 0, "unmatched": 0, "skipped": 0, "failed": 0}

    async def start(self) -> None:
        self._subscription = self.bus.subscribe("call.ended", self.on_call_ended)

    async def stop(self) -> None:
        if self._subscription is not None:
            self.bus.unsubscribe(self._subscription)
            self._subscription = None

    async def on_call_ended(self, event: Event) -> None:
        """Bus handler: write the log; a failure is logged with the call id, never raised to the bus."""
        try:
            await self.write(event)
        except Exception:
            self.stats["failed"] += 1
            log.exception("call_log_failed", call_id=event.data.get("call_id"))

    async def write(self, event: Event) -> CallLog | None:
        """The call log for ``event`` (None when the call belongs to no known call center or is logged)."""
        data = event.data
        call_id = _text(data.get("call_id"), 255)
        kept = self.pop_for_call(call_id) if self.pop_for_call is not None and call_id else None
        if kept is not None and not isinstance(data.get("screenpop"), dict):
            data = {**data, "screenpop": kept}
        call_center = event.call_center or data.get("call_center")
        if not call_center or not isinstance(call_center, str):
            self.stats["skipped"] += 1
            log.info("call_log_skipped", call_id=call_id, reason="no call center")
            return None
        try:
            profile = await self.profile(call_center)
        except UnknownCallCenter:
            self.stats["skipped"] += 1
            log.warning(
                "call_log_skipped", call_id=call_id, reason="unknown call center", call_center=call_center
            )
            return None
        direction = (
            data.get("direction")
            if data.get("direction") in ("inbound", "outbound", "internal")
            else "inbound"
        )
        caller = _caller_number(data)
        called = str(data.get("called_number") or data.get("to") or "")
        customer_raw = called if direction == "outbound" else caller
        customer = try_normalize(customer_raw, profile.region) if customer_raw else None
        contact_id = await self._contact_for(profile.id, data, customer)
        started, answered, ended = call_times(data, datetime.now(UTC))
        # Scoped to the call center: a contact, case or agent id of another one is simply not found.
        async with self.store.tenant_session(profile.id) as db:
            if call_id:
                exists = await db.execute(
                    select(CallLog.id).where(CallLog.call_center_id == profile.id, CallLog.call_id == call_id)
                )
                if exists.scalar() is not None:
                    return None
            if contact_id is not None and await db.get(Contact, contact_id) is None:
                contact_id = None
            case_id = data.get("case_id") if isinstance(data.get("case_id"), str) else None
            if case_id is not None and await db.get(Case, case_id) is None:
                case_id = None
            agent = data.get("agent_user_id") if isinstance(data.get("agent_user_id"), str) else None
            if agent is not None and await db.get(User, agent) is None:
                agent = None
            call_log = CallLog(
                call_center_id=profile.id,
                call_id=call_id,
                direction=direction,
                from_number=caller[:64],
                to_number=called[:64],
                customer_number=customer or "",
                contact_id=contact_id,
                case_id=case_id,
                agent_user_id=agent,
                started_at=started,
                answered_at=answered,
                ended_at=ended,
                disposition=_text(
                    data.get("disposition") or data.get("end_reason") or data.get("reason"), 32
                ),
                notes=_text(data.get("notes"), 20000),
                recording_url=_text(data.get("recording_url"), 500),
                transcript_url=_text(data.get("transcript_url"), 500),
                screen_pop=data["screenpop"] if isinstance(data.get("screenpop"), dict) else {},
            )
            db.add(call_log)
            await db.commit()
        self.stats["written"] += 1
        self.stats["matched" if contact_id else "unmatched"] += 1
        log.info("call_logged", call_id=call_id, call_log=call_log.id, contact_id=contact_id, number=customer)
        return call_log

    async def _contact_for(self, call_center_id: str, data: dict[str, Any], number: str | None) -> str | None:
        chosen = data.get("contact_id")
        if isinstance(chosen, str) and chosen:
            return chosen
        pop_data = data.get("screenpop")
        if isinstance(pop_data, dict):
            try:
                pop = ScreenPop.from_dict(pop_data)
            except (RulesError, KeyError, TypeError, ValueError):
                pop = None
            if pop is not None and not pop.late and pop.outcome != "error":
                return pop.contact_id
        if number is None:
            return None
        matches = await self.directory.find_by_number(call_center_id, number, 2)
        return matches[0].contact_id if len(matches) == 1 else None
