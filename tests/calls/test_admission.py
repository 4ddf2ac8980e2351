"""Overload shedding of new calls (cti_server.calls.admission), sans-IO: the time is passed in."""

from __future__ import annotations

from cti_server.calls.admission import IN_SETUP, RATE, CallAdmission


def test_no_limits_admit_everything() -> None:
    admission = CallAdmission()
    assert all(admission.admit(0.0, in_setup=10_000) is None for _ in range(1000))


def test_rate_admits_one_seconds_burst_then_the_rate() -> None:
    admission = CallAdmission(max_rate=100)
    burst = [admission.admit(5.0, 0) for _ in range(150)]
    assert burst.count(None) == 100 and burst[100:] == [RATE] * 50
    # 0.25 s later a quarter of a second's tokens have come back, no more.
    later = [admission.admit(5.25, 0) for _ in range(40)]
    assert later.count(None) == 25 and later[25:] == [RATE] * 15


def test_rate_tokens_do_not_pile_up_while_idle() -> None:
    admission = CallAdmission(max_rate=10)
    assert admission.admit(0.0, 0) is None
    results = [admission.admit(3600.0, 0) for _ in range(20)]
    assert results.count(None) == 10


def test_a_rate_below_one_still_admits_one_call_at_a_time() -> None:
    admission = CallAdmission(max_rate=0.5)
    assert admission.admit(0.0, 0) is None
    assert admission.admit(1.0, 0) == RATE
    assert admission.admit(2.0, 0) is None


def test_in_setup_limit_sheds_at_the_limit_and_takes_no_token() -> None:
    admission = CallAdmission(max_rate=2, max_in_setup=3)
    assert admission.admit(0.0, in_setup=2) is None
    assert admission.admit(0.0, in_setup=3) == IN_SETUP
    assert admission.admit(0.0, in_setup=7) == IN_SETUP
    # The shed calls took no token: one of the two is left.
    assert admission.admit(0.0, in_setup=0) is None
    assert admission.admit(0.0, in_setup=0) == RATE
