"""Shutdown ends every task it started: work in flight finishes, a task deaf to one cancel gets another,
and stopping the server right after an event leaves nothing running (no hang in ``asyncio.run``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from cti_server.api.screenpop import SCREENPOP_KEY
from cti_server.events import Event
from cti_server.server import CtiServer
from cti_server.shutdown import other_tasks, settle
from cti_server.store import Store
from cti_server.webhooks.delivery import WebhookDispatcher
from tests.conftest import make_config


async def _deaf_to_one_cancel(ended: list[str]) -> None:
    """What SQLAlchemy's aiosqlite close does when its worker thread is gone: swallow the first cancel
    and wait on a future nobody will resolve."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            ended.append("second cancel")


async def test_settle_lets_work_finish_before_cancelling_it() -> None:
    cancelled = []

    async def store_read() -> str:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "row"

    task = asyncio.ensure_future(store_read())
    assert await settle([task], grace=1.0) == 0
    assert task.result() == "row" and cancelled == []


async def test_settle_cancels_again_a_task_that_swallowed_the_first_cancel() -> None:
    ended: list[str] = []
    task = asyncio.ensure_future(_deaf_to_one_cancel(ended))
    await asyncio.sleep(0)
    assert await settle([task], grace=0.05) == 0
    assert task.cancelled() and ended == ["second cancel"]


async def test_settle_gives_up_on_a_task_that_never_ends_and_names_it() -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.ensure_future(deaf())
    task.set_name("deaf-task")
    await asyncio.sleep(0)
    try:
        with capture_logs() as logs:
            left = await settle([task], grace=0.02, what="test tasks")
    finally:
        release.set()
        task.cancel()
        await task
    assert left == 1
    assert [(e["event"], e["what"], e["tasks"]) for e in logs] == [
        ("shutdown_tasks_left", "test tasks", ["deaf-task"])]


@pytest.mark.parametrize("topic", ["call.ended", "work_item.created", "screenpop.popped"])
async def test_server_stopped_right_after_an_event_leaves_no_task_running(topic: str) -> None:
    server = CtiServer(make_config())
    await server.start()
    server.bus.publish(Event(topic, {"call_id": "c-1", "caller": "+15551234567"}, call_center="support"))
    await asyncio.sleep(0)
    await server.stop()
    assert other_tasks() == set()


async def test_event_handlers_finish_before_the_store_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call's last events are handled (its log written) while the store is still open."""
    order: list[str] = []
    original_close = Store.close

    async def close(self: Store) -> None:
        order.append("store closed")
        await original_close(self)

    monkeypatch.setattr(Store, "close", close)
    server = CtiServer(make_config())
    await server.start()

    async def slow_handler(event: Event) -> None:
        await asyncio.sleep(0.2)
        order.append("handler done")

    server.bus.subscribe("call.ended", slow_handler)
    server.bus.publish(Event("call.ended", {"call_id": "c-2"}, call_center="support"))
    await server.stop()
    assert order == ["handler done", "store closed"]


async def test_webhook_target_load_in_flight_at_stop_is_let_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping does not cancel a store read half-way (that is what can hang SQLAlchemy's aiosqlite
    close); the load finishes and its targets are cached."""
    loads: list[str] = []
    original = WebhookDispatcher._load_targets

    async def slow_load(self: WebhookDispatcher, name_or_id: str) -> Any:
        await asyncio.sleep(0.2)
        try:
            return await original(self, name_or_id)
        finally:
            loads.append(name_or_id)

    monkeypatch.setattr(WebhookDispatcher, "_load_targets", slow_load)
    server = CtiServer(make_config())
    await server.start()
    server.bus.publish(Event("call.offered", {"call_id": "c-3"}, call_center="support"))
    await asyncio.sleep(0.01)
    await server.stop()
    assert loads == ["support"]
    assert other_tasks() == set()


async def test_late_screen_pop_at_stop_is_let_finish() -> None:
    finished: list[str] = []

    async def late_read() -> None:
        await asyncio.sleep(0.1)
        finished.append("read")

    server = CtiServer(make_config())
    await server.start()
    lookup = server.app[SCREENPOP_KEY]
    lookup._late.add(asyncio.ensure_future(late_read()))
    await server.stop()
    assert finished == ["read"]
