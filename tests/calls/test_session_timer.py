"""RFC 4028 session timer negotiation."""

from __future__ import annotations

import pytest

from cti_server.calls.session_timer import (
    SessionIntervalTooSmall,
    SessionTimer,
    negotiate_as_uas,
    negotiated_as_uac,
    parse_session_expires,
    request_headers,
)
from cti_server.sip.headers import Headers


def test_parse_session_expires() -> None:
    assert parse_session_expires("1800") == (1800, None)
    assert parse_session_expires("1800 ; refresher=UAS") == (1800, "uas")
    for bad in ("", "abc", "0", "90;refresher=proxy"):
        with pytest.raises(ValueError):
            parse_session_expires(bad)


def test_uas_takes_requested_interval_and_refresher() -> None:
    timer = negotiate_as_uas(Headers([("Session-Expires", "600;refresher=uac"), ("Supported", "timer")]),
                             min_se=90, preferred=1800)
    assert timer == SessionTimer(600, "uac")
    assert timer.header_value() == "600;refresher=uac"
    assert timer.refresh_after() == 300
    assert timer.expire_after() == 568
    assert timer.we_refresh(we_are_uac=False) is False


def test_uas_refreshes_itself_when_uac_lacks_timer_support() -> None:
    timer = negotiate_as_uas(Headers([("Session-Expires", "600")]), min_se=90, preferred=1800)
    assert timer == SessionTimer(600, "uas")
    assert timer.we_refresh(we_are_uac=False)


def test_uas_without_request() -> None:
    assert negotiate_as_uas(Headers([("Supported", "100rel, timer")]), min_se=90, preferred=1800) == \
        SessionTimer(1800, "uac")
    assert negotiate_as_uas(Headers(), min_se=90, preferred=1800) is None


def test_too_small_interval_is_422_with_min_se() -> None:
    with pytest.raises(SessionIntervalTooSmall) as info:
        negotiate_as_uas(Headers([("Session-Expires", "60")]), min_se=120, preferred=1800)
    assert info.value.min_se == 120


def test_uac_side() -> None:
    headers = Headers()
    request_headers(headers, interval=1800, min_se=90)
    assert headers.get("Session-Expires") == "1800"
    assert headers.get("Min-SE") == "90"
    assert negotiated_as_uac(Headers([("Session-Expires", "900;refresher=uas")]), requested=1800) == \
        SessionTimer(900, "uas")
    assert negotiated_as_uac(Headers(), requested=1800) is None
    short = SessionTimer(90, "uac")
    assert short.expire_after() == 60
