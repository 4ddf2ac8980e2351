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

Calls ending together share one transaction per call center (group commit): each bus handler prepares
its row, joins the batch and waits for the commit, so ``bus.drain()`` still means "written".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Prepared:
    """A call log worked out from its event, before the store checks the ids it names."""

    call_center_id: str
    call_id: str
    contact_id: str | None
    case_id: str | None
    agent: str | None
    columns: dict[str, Any]


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
        self._batch: list[tuple[_Prepared, asyncio.Future[CallLog | None]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._subscription = self.bus.subscribe("call.ended", self.on_call_ended)

    async def stop(self) -> None:
        if self._subscription is not None:
            self.bus.unsubscribe(self._subscription)
            self._subscription = None
        if self._committing is not None:
            await asyncio.gather(self._committing, return_exceptions=True)

    async def on_call_ended(self, event: Event) -> None:
        """Bus handler: write the log; a failure is logged with the call id, never raised to the bus."""
        try:
            prepared = await self._prepare(event)
            if prepared is None:
                return
            written: asyncio.Future[CallLog | None] = asyncio.get_running_loop().create_future()
            self._batch.append((prepared, written))
            if self._committing is None or self._committing.done():
                self._committing = asyncio.ensure_future(self._commit_batch())
            await written
        except Exception:
            self.stats["failed"] += 1
            log.exception("call_log_failed", call_id=event.data.get("call_id"))

    async def write(self, event: Event) -> CallLog | None:
        """The call log for ``event`` (None when the call belongs to no known call center or is logged)."""
        prepared = await self._prepare(event)
        if prepared is None:
            return None
        (written,) = await self._store(prepared.call_center_id, [prepared])
        return written

    async def _commit_batch(self) -> None:
        await asyncio.sleep(0)  # let the handlers of calls that ended in the same moment join
        while self._batch:
            batch, self._batch = self._batch, []
            by_center: dict[str, list[tuple[_Prepared, asyncio.Future[CallLog | None]]]] = {}
            for item in batch:
                by_center.setdefault(item[0].call_center_id, []).append(item)
            for call_center_id, items in by_center.items():
                try:
                    written = await self._store(call_center_id, [prepared for prepared, _ in items])
                except BaseException as exc:  # cancelled too: no handler may wait for ever
                    failure = exc if isinstance(exc, Exception) else RuntimeError("call-log writer stopped")
                    for _, future in items:
                        if not future.done():
                            future.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), call_log in zip(items, written, strict=True):
                    if not future.done():
                        future.set_result(call_log)

    async def _prepare(self, event: Event) -> _Prepared | None:
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
        return _Prepared(
            call_center_id=profile.id,
            call_id=call_id,
            contact_id=contact_id,
            case_id=data.get("case_id") if isinstance(data.get("case_id"), str) else None,
            agent=data.get("agent_user_id") if isinstance(data.get("agent_user_id"), str) else None,
            columns={
                "direction": direction,
                "from_number": caller[:64],
                "to_number": called[:64],
                "customer_number": customer or "",
                "started_at": started,
                "answered_at": answered,
                "ended_at": ended,
                "disposition": _text(
                    data.get("disposition") or data.get("end_reason") or data.get("reason"), 32
                ),
                "notes": _text(data.get("notes"), 20000),
                "recording_url": _text(data.get("recording_url"), 500),
                "transcript_url": _text(data.get("transcript_url"), 500),
                "screen_pop": data["screenpop"] if isinstance(data.get("screenpop"), dict) else {},
            },
        )

    async def _store(self, call_center_id: str, batch: list[_Prepared]) -> list[CallLog | None]:
        """Write a call center's prepared logs in one transaction (None for a call already logged)."""
        written: list[CallLog | None] = []
        # Scoped to the call center: a contact, case or agent id of another one is simply not found.
        async with self.store.tenant_session(call_center_id) as db:
            for prepared in batch:
                if prepared.call_id:
                    exists = await db.execute(
                        select(CallLog.id).where(
                            CallLog.call_center_id == call_center_id, CallLog.call_id == prepared.call_id
                        )
                    )
                    if exists.scalar() is not None:
                        written.append(None)
                        continue
                contact_id, case_id, agent = prepared.contact_id, prepared.case_id, prepared.agent
                if contact_id is not None and await db.get(Contact, contact_id) is None:
                    contact_id = None
                if case_id is not None and await db.get(Case, case_id) is None:
                    case_id = None
                if agent is not None and await db.get(User, agent) is None:
                    agent = None
                call_log = CallLog(
                    call_center_id=call_center_id,
                    call_id=prepared.call_id,
                    contact_id=contact_id,
                    case_id=case_id,
                    agent_user_id=agent,
                    **prepared.columns,
                )
                db.add(call_log)
                await db.flush()  # a second end of the same call in this batch finds this row
                written.append(call_log)
            await db.commit()
        for logged in written:
            if logged is None:
                continue
            self.stats["written"] += 1
            self.stats["matched" if logged.contact_id else "unmatched"] += 1
            log.info(
                "call_logged",
                call_id=logged.call_id,
                call_log=logged.id,
                contact_id=logged.contact_id,
                number=logged.customer_number or None,
            )
        return written

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
