"""Ending background tasks at shutdown without hanging on one that will not end.

``settle(tasks, grace)`` lets the tasks finish for ``grace`` seconds, then cancels the rest, and cancels
again any that outlive a cancel by ``grace``: SQLAlchemy's aiosqlite adapter, cancelled while it
returns a connection, closes it in a shielded task whose close waits on a worker thread that its own
force-close already stopped (aiosqlite 0.22); only a second cancel ends that wait. A store read that is
let finish never gets there, which is why components wait before they cancel. Whatever still runs
after that is logged by name and left to the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DEFAULT_GRACE = 2.0
"""``server.shutdown_grace``'s default: what a part stopped on its own (tests, the CLI) waits."""

CANCEL_ROUNDS = 3
"""Cancels a task gets before it is given up on (the second ends the aiosqlite close above)."""


async def settle(tasks: Iterable[asyncio.Future[Any]], grace: float, *, what: str = "tasks",
                 wait_first: bool = True) -> int:
    """Wait up to ``grace`` seconds for ``tasks`` (unless not ``wait_first``), then cancel what still
    runs, up to ``CANCEL_ROUNDS`` times ``grace`` apart. Returns how many never ended; a task never
    gets a cancel it does not need.
    """
    pending = {task for task in tasks if not task.done()}
    if pending and wait_first and grace > 0:
        _done, pending = await asyncio.wait(pending, timeout=grace)
    for _round in range(CANCEL_ROUNDS):
        if not pending:
            return 0
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=max(grace, 0.01))
    names = sorted(task.get_name() if isinstance(task, asyncio.Task) else repr(task) for task in pending)
    log.warning("shutdown_tasks_left", what=what, count=len(pending), tasks=names[:10])
    return len(pending)


def other_tasks() -> set[asyncio.Task[Any]]:
    """Every unfinished task of the running loop except the caller's own."""
    me = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not me and not task.done()}
