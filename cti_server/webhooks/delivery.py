"""Webhook deliveries: events from the bus to integrators' endpoints, signed, retried, recorded.

``WebhookDispatcher`` subscribes to ``call.*``, ``screenpop.*`` and ``work_item.*``. For each event of a
call center it writes one ``webhook_deliveries`` row per active subscription whose ``events`` globs
match the topic, then wakes its worker. The worker POSTs the JSON envelope::

    {"id": "<event id>", "topic": "call.ended", "call_center_id": "...", "occurred_at": "<ISO 8601>",
     "data": {...}}

signed as in ``signing.py`` (``X-CTI-Timestamp``, ``X-CTI-Signature``). Any 2xx is delivered; anything
else (or no answer within ``timeout``) is retried after ``min(backoff_cap, backoff_base * 2**(n-1))``
seconds until ``max_attempts``, then the delivery is ``failed``. Every attempt is a
``webhook_attempts`` row. Deliveries live in the store, so a restart resumes the retries; a node claims
a due delivery with a conditional UPDATE (a lease), so two nodes never send the same attempt.

The call path stays free of store work: which call center an event names and its active subscriptions
are cached per call center (a miss too) for ``TARGET_CACHE_SECONDS`` and dropped at once by ``forget``
(the webhooks API calls it on every change); an event nobody subscribed to costs a dictionary look-up and
no task, and the deliveries of many events are written by one flush task in one transaction.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog
from sqlalchemy import or_, select, update

from cti_server.config import WebhooksConfig
from cti_server.events import Event, EventBus, Subscription
from cti_server.shutdown import DEFAULT_GRACE, settle
from cti_server.store import Store
from cti_server.store.models import CallCenter, WebhookAttempt, WebhookDelivery, WebhookSubscription
from cti_server.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, retry_delay, signed_headers

log = structlog.get_logger(__name__)

WEBHOOK_TOPICS = ("call.*", "screenpop.*", "work_item.*")
"""Topic families integrators can subscribe to."""
PING_TOPIC = "webhook.ping"
USER_AGENT = "cti-server-webhooks/1"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

TARGET_CACHE_SECONDS = 5.0
"""How long a call center's subscriptions (or its absence) are remembered; other nodes' changes show
after at most this long, this node's own at once (``forget``)."""


@dataclass(frozen=True)
class _Targets:
    """A call center's id (None: no such call center) and its active subscriptions' (id, globs)."""

    expires: float
    call_center_id: str | None
    subscriptions: tuple[tuple[str, tuple[str, ...]], ...]

    def wanted(self, topic: str) -> list[str]:
        return [sid for sid, patterns in self.subscriptions if subscribed(list(patterns), topic)]


def topic_allowed(pattern: str) -> bool:
    """True when a subscription's glob names topics of the families above (or every one: ``*``)."""
    family = pattern.split(".", 1)[0]
    return pattern == "*" or family in {t.split(".", 1)[0] for t in WEBHOOK_TOPICS}


def subscribed(patterns: list[str], topic: str) -> bool:
    """True when ``topic`` matches one of a subscription's globs."""
    return any(fnmatch.fnmatchcase(topic, p) for p in patterns)


def envelope(
    event_id: str, topic: str, call_center_id: str, occurred_at: float, data: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body of a delivery."""
    return {
        "id": event_id,
        "topic": topic,
        "call_center_id": call_center_id,
        "occurred_at": datetime.fromtimestamp(occurred_at, UTC).isoformat(),
        "data": data,
    }


class WebhookDispatcher:
    """Turns bus events into stored deliveries and sends them from one asyncio worker."""

    def __init__(self, store: Store, bus: EventBus, config: WebhooksConfig) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        self._subscriptions: list[Subscription] = []
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._targets: dict[str, _Targets] = {}
        self._loading: dict[str, asyncio.Task[_Targets]] = {}
        self._generation = 0  # bumped by forget: a load started before it is not cached
        self._pending: list[WebhookDelivery] = []
        self._flush: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.stats: dict[str, int] = {"queued": 0, "attempts": 0, "delivered": 0, "failed": 0, "retries": 0}

    async def start(self) -> None:
        """Subscribe to the bus and start the delivery worker."""
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout), headers={"User-Agent": USER_AGENT}
        )
        self._subscriptions = [self.bus.subscribe(topic, self.on_event) for topic in WEBHOOK_TOPICS]
        self._worker = asyncio.create_task(self._run(), name="webhook-worker")
        self._wake.set()  # resume deliveries left pending by a previous run

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop taking events, let target loads in flight finish (store reads: see shutdown.py), write
        the queued deliveries, then stop the worker and the sends in flight."""
        for subscription in self._subscriptions:
            self.bus.unsubscribe(subscription)
        self._subscriptions = []
        await settle(list(self._loading.values()), grace, what="webhook target loads")
        await self.flush()
        if self._worker is not None:
            await settle([self._worker], grace, what="webhook worker", wait_first=False)
            self._worker = None
        await settle(self._in_flight, grace, what="webhook sends", wait_first=False)
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- queueing -----------------------------------------------------------------------------------

    def on_event(self, event: Event) -> Awaitable[None] | None:
        """Bus handler: queue a delivery per matching subscription (failures logged, never raised).

        With the call center's subscriptions cached this runs inline and starts no task; the rows are
        written by the flush task.
        """
        if not event.call_center:
            return None
        targets = self._targets.get(event.call_center)
        if targets is None:
            return self._load_and_queue(event)
        if targets.expires <= time.monotonic():
            self._load(event.call_center)  # one refresh in the background; this event uses what we have
        self._queue(event, targets)
        return None

    async def _load_and_queue(self, event: Event) -> None:
        try:
            assert event.call_center is not None
            self._queue(event, await self._load(event.call_center))
        except Exception:
            log.exception("webhook_enqueue_failed", topic=event.topic, call_id=event.data.get("call_id"))

    def _queue(self, event: Event, targets: _Targets) -> int:
        if targets.call_center_id is None:
            return 0
        wanted = targets.wanted(event.topic)
        if not wanted:
            return 0
        self._pending.extend(self._deliveries(event, targets.call_center_id, wanted))
        self.stats["queued"] += len(wanted)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.ensure_future(self._flush_soon())
        return len(wanted)

    @staticmethod
    def _deliveries(event: Event, call_center_id: str, wanted: list[str]) -> list[WebhookDelivery]:
        body = envelope(uuid.uuid4().hex, event.topic, call_center_id, event.timestamp, event.data)
        now = datetime.now(UTC)
        return [
            WebhookDelivery(
                call_center_id=call_center_id,
                subscription_id=subscription_id,
                event_id=body["id"],
                topic=event.topic,
                payload=body,
                status=PENDING,
                next_attempt_at=now,
            )
            for subscription_id in wanted
        ]

    async def _flush_soon(self) -> None:
        try:
            await self.flush()
        except Exception:
            log.exception("webhook_enqueue_failed", deliveries=len(self._pending))

    async def flush(self) -> int:
        """Write the queued deliveries in one transaction and wake the worker; returns how many."""
        written = 0
        while self._pending:
            batch, self._pending = self._pending, []
            async with self.store.session() as db:
                db.add_all(batch)
                await db.commit()
            written += len(batch)
        if written:
            self._wake.set()
        return written

    def forget(self, call_center: str | None = None) -> None:
        """Drop cached subscriptions (all, or one call center's by the id or name events carry)."""
        self._generation += 1
        self._loading.clear()
        if call_center is None:
            self._targets.clear()
        else:
            self._targets.pop(call_center, None)
            for key in [k for k, t in self._targets.items() if t.call_center_id == call_center]:
                del self._targets[key]

    async def enqueue_event(self, event: Event) -> int:
        """Store deliveries of ``event`` for its call center's subscriptions now; returns how many."""
        if not event.call_center:
            return 0
        targets = self._cached_targets(event.call_center) or await self._load(event.call_center)
        if targets.call_center_id is None:
            return 0
        wanted = targets.wanted(event.topic)
        if not wanted:
            return 0
        async with self.store.session() as db:
            db.add_all(self._deliveries(event, targets.call_center_id, wanted))
            await db.commit()
        self.stats["queued"] += len(wanted)
        self._wake.set()
        return len(wanted)

    async def enqueue_ping(self, subscription: WebhookSubscription) -> int:
        """Queue a ``webhook.ping`` to one subscription (testing the endpoint); returns the delivery id."""
        body = envelope(
            uuid.uuid4().hex, PING_TOPIC, subscription.call_center_id, time.time(), {"ping": True}
        )
        async with self.store.session() as db:
            delivery = WebhookDelivery(
                call_center_id=subscription.call_center_id,
                subscription_id=subscription.id,
                event_id=body["id"],
                topic=PING_TOPIC,
                payload=body,
                status=PENDING,
                next_attempt_at=datetime.now(UTC),
            )
            db.add(delivery)
            await db.commit()
        self.stats["queued"] += 1
        self._wake.set()
        return delivery.id

    def _cached_targets(self, name_or_id: str) -> _Targets | None:
        targets = self._targets.get(name_or_id)
        if targets is None or targets.expires <= time.monotonic():
            return None
        return targets

    def _load(self, name_or_id: str) -> asyncio.Task[_Targets]:
        """One load of a call center's targets at a time, whoever asks (events arriving meanwhile wait)."""
        loading = self._loading.get(name_or_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load_targets(name_or_id))
            self._loading[name_or_id] = loading
            loading.add_done_callback(lambda done: self._loaded(name_or_id, done))
        return loading

    def _loaded(self, name_or_id: str, done: asyncio.Task[_Targets]) -> None:
        if self._loading.get(name_or_id) is done:
            del self._loading[name_or_id]
        if not done.cancelled() and done.exception() is not None:
            log.warning("webhook_targets_load_failed", call_center=name_or_id, error=repr(done.exception()))

    async def _load_targets(self, name_or_id: str) -> _Targets:
        """The call center's id and active subscriptions from the store (then cached)."""
        generation = self._generation
        async with self.store.engine.connect() as connection:
            found = (
                await connection.execute(
                    select(CallCenter.id).where(
                        or_(CallCenter.id == name_or_id, CallCenter.name == name_or_id)
                    )
                )
            ).scalar()
            rows = []
            if found is not None:
                rows = list(
                    (
                        await connection.execute(
                            select(WebhookSubscription.id, WebhookSubscription.events).where(
                                WebhookSubscription.call_center_id == found,
                                WebhookSubscription.active.is_(True),
                            )
                        )
                    ).all()
                )
        targets = _Targets(
            expires=time.monotonic() + TARGET_CACHE_SECONDS,
            call_center_id=found,
            subscriptions=tuple((row[0], tuple(row[1] or ())) for row in rows),
        )
        if generation == self._generation:
            self._targets[name_or_id] = targets
        return targets

    # --- sending ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: no inner task, so stop()'s cancel lands at once (wait_for's
            # inner Event.wait task was seen to leave the worker "cancelling" forever under uvloop).
            try:
                async with asyncio.timeout(self.config.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                log.exception("webhook_worker_failed")

    async def deliver_due(self) -> int:
        """Send every due delivery (bounded by ``concurrency``); returns how many were attempted."""
        now = datetime.now(UTC)
        async with self.store.engine.connect() as connection:
            due = (
                await connection.execute(
                    select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
                    .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(self.config.concurrency * 8)
                )
            ).all()
        if not due:
            return 0
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(delivery_id: int, due_at: datetime | None) -> None:
            async with gate:
                await self.attempt(delivery_id, due_at)

        tasks = [asyncio.create_task(one(row[0], row[1])) for row in due]
        self._in_flight.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._in_flight.difference_update(tasks)
        if len(due) == self.config.concurrency * 8:
            self._wake.set()  # more are waiting
        return len(due)

    async def attempt(self, delivery_id: int, due_at: datetime | None) -> None:
        """One attempt of one delivery: claim it, POST it, record the attempt, schedule a retry or finish."""
        lease = datetime.now(UTC) + timedelta(seconds=self.config.timeout * 2 + 1)
        async with self.store.session() as db:
            claimed = await db.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == PENDING,
                    WebhookDelivery.next_attempt_at == due_at,
                )
                .values(next_attempt_at=lease)
                .execution_options(synchronize_session=False)
            )
            await db.commit()
            if getattr(claimed, "rowcount", 0) != 1:
                return  # another node (or worker pass) has it
            delivery = await db.get(WebhookDelivery, delivery_id)
            subscription = await db.get(WebhookSubscription, delivery.subscription_id) if delivery else None
            if delivery is None or subscription is None:
                return
            number = delivery.attempts + 1
            status, response_body, error, elapsed_ms = await self._post(subscription, delivery)
            db.add(
                WebhookAttempt(
                    call_center_id=delivery.call_center_id,
                    delivery_id=delivery.id,
                    number=number,
                    response_status=status,
                    response_body=response_body,
                    error=error,
                    duration_ms=round(elapsed_ms, 3),
                )
            )
            delivery.attempts = number
            delivery.response_status = status
            delivery.last_error = error
            self.stats["attempts"] += 1
            if status is not None and 200 <= status < 300:
                delivery.status = DELIVERED
                delivery.delivered_at = datetime.now(UTC)
                delivery.next_attempt_at = None
                self.stats["delivered"] += 1
            elif number >= self.config.max_attempts:
                delivery.status = FAILED
                delivery.next_attempt_at = None
                self.stats["failed"] += 1
            else:
                delay = retry_delay(number, self.config.backoff_base, self.config.backoff_cap)
                delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
                self.stats["retries"] += 1
            await db.commit()
        log.info(
            "webhook_attempt",
            delivery=delivery_id,
            topic=delivery.topic,
            attempt=number,
            status=status,
            error=error or None,
            outcome=delivery.status,
            call_id=(delivery.payload.get("data") or {}).get("call_id"),
        )

    async def _post(
        self, subscription: WebhookSubscription, delivery: WebhookDelivery
    ) -> tuple[int | None, str, str, float]:
        """(status or None, response body excerpt, error text, milliseconds) of one POST."""
        if self._http is None:
            return None, "", "dispatcher is not running", 0.0
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: delivery.topic,
            DELIVERY_HEADER: str(delivery.id),
            **signed_headers(subscription.secret, int(time.time()), body),
        }
        started = time.perf_counter()
        try:
            async with self._http.post(
                subscription.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                text = await resp.text(errors="replace")
                return (
                    resp.status,
                    text[: self.config.max_response_chars],
                    "",
                    (time.perf_counter() - started) * 1000,
                )
        except TimeoutError:
            return (
                None,
                "",
                f"no answer within {self.config.timeout} s",
                (time.perf_counter() - started) * 1000,
            )
        except aiohttp.ClientError as exc:
            return None, "", f"{type(exc).__name__}: {exc}"[:500], (time.perf_counter() - started) * 1000
