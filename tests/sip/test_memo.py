"""sip/memo.py: a memo keeps what it is given and is emptied when it reaches its limit."""

from cti_server.sip.memo import remember


def test_remember_keeps_the_value_and_empties_a_full_memo_first() -> None:
    memo: dict[str, int] = {}
    assert remember(memo, "a", 1, limit=2) == 1
    assert remember(memo, "b", 2, limit=2) == 2
    assert memo == {"a": 1, "b": 2}
    assert remember(memo, "c", 3, limit=2) == 3
    assert memo == {"c": 3}
