"""Shared fixtures: configs on free loopback ports."""

from __future__ import annotations

import asyncio
import inspect
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog

from cti_server.config import Config, config_from_mapping
from cti_server.shutdown import CANCEL_ROUNDS, other_tasks


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair found")


def make_config(**sections: Any) -> Config:
    """A validated Config on free ports, with ``sections`` merged over the defaults."""
    sip_port = free_port()
    data: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": 0},
        "sip": {"host": "127.0.0.1", "udp_port": sip_port, "tcp_port": sip_port,
                "users": [{"username": "1001", "password": "secret1001"},
                          {"username": "1002", "password": "secret1002"}]},
        "log": {"format": "json", "level": "warning"},
        # A store file of this config's own, so servers started by tests never share var/cti-server.db.
        "store": {"url": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='cti-store-')}/store.db"},
        "auth": {"password_memory_kib": 1024, "password_time_cost": 1},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_mapping(data)


@pytest.fixture
def config() -> Iterator[Config]:
    yield make_config()


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """A test that runs the CLI configures structlog (e.g. level "error"); the next test's
    ``capture_logs`` must not inherit that filter."""
    saved = structlog.get_config()
    yield
    if structlog.get_config() != saved:
        structlog.configure(**saved)


#: Seconds a task left behind by a test gets to finish after each cancel.
LEFTOVER_TASK_GRACE = 2.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every coroutine test gets ``_leftover_tasks_end`` as its first fixture (torn down last)."""
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.fixturenames.insert(0, "_leftover_tasks_end")  # type: ignore[attr-defined]


@pytest.fixture
async def _leftover_tasks_end() -> AsyncIterator[None]:
    """After a coroutine test and its fixtures: cancel the tasks it left running, as the event loop's
    close would, but name any that does not end, instead of hanging the run until the test timeout."""
    yield
    pending = other_tasks()
    stuck: dict[asyncio.Task[object], str] = {}
    for _round in range(CANCEL_ROUNDS):  # as shutdown.settle, but naming every task a cancel missed
        if not pending:
            break
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=LEFTOVER_TASK_GRACE)
        for task in pending:
            stuck.setdefault(task, _describe(task))
    if stuck:
        pytest.fail(f"{len(stuck)} task(s) left by the test ignored cancellation ({len(pending)} never "
                    "ended):\n" + "\n".join(stuck.values()))


def _describe(task: asyncio.Task[object]) -> str:
    frames = "".join(f"\n    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
                     for frame in task.get_stack())
    waiter = getattr(task, "_fut_waiter", None)
    return f"{task.get_name()} {task.get_coro()!r} waiting on {waiter!r}{frames}"
