"""Bounded memos for values that repeat from message to message (start lines, header lines, CSeq,
addresses, Via sent-by): a plain dict, emptied whenever it reaches its limit, so odd traffic cannot grow
it. Callers look a key up in the dict themselves (the hit path is one ``dict.get``); ``remember`` is the
miss path."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

MEMO_LIMIT = 2048
"""Entries a memo holds before it is emptied (unless its caller gives another limit)."""


def remember(memo: dict[K, V], key: K, value: V, limit: int = MEMO_LIMIT) -> V:
    """Put ``key: value`` in ``memo`` (emptied first when it holds ``limit`` entries); returns ``value``."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value
