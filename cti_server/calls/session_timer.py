"""Session timers (RFC 4028), sans-IO: negotiation of Session-Expires / Min-SE and when to act.

The refresher re-sends the session (re-INVITE or UPDATE) every half interval (section 10); the other
side ends the session with BYE when no refresh came ``min(32, interval / 3)`` seconds before it
expires (section 10). A refresh re-INVITE that meets the peer's own re-INVITE (glare) gets 491 and is
sent again after ``glare_retry_delay`` (RFC 3261 section 14.1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cti_server.sip.headers import Headers

#: RFC 4028 section 4: the smallest Min-SE anyone may ask for.
ABSOLUTE_MIN_SE = 90


class SessionIntervalTooSmall(ValueError):
    """The peer asked for a shorter interval than our Min-SE: answer 422 with ``min_se`` (section 6)."""

    def __init__(self, min_se: int) -> None:
        super().__init__(f"Session-Expires below Min-SE {min_se}")
        self.min_se = min_se


@dataclass(frozen=True)
class SessionTimer:
    """A negotiated session timer: the interval in seconds and who refreshes (``uac`` or ``uas``)."""

    interval: int
    refresher: str

    def header_value(self) -> str:
        """The ``Session-Expires`` value for a 2xx or a refresh request."""
        return f"{self.interval};refresher={self.refresher}"

    def refresh_after(self) -> float:
        """Seconds after the last refresh when the refresher sends the next one (half the interval)."""
        return self.interval / 2

    def expire_after(self) -> float:
        """Seconds after the last refresh when the non-refresher gives up and sends BYE."""
        return self.interval - min(32.0, self.interval / 3)

    def we_refresh(self, we_are_uac: bool) -> bool:
        """Whether our side of the dialog is the refresher."""
        return (self.refresher == "uac") == we_are_uac


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """``delta-seconds *(;param)`` with optional ``refresher=uac|uas`` (section 4); ValueError if bad."""
    parts = [p.strip() for p in value.split(";")]
    interval = int(parts[0])
    if interval <= 0:
        raise ValueError(f"Session-Expires must be positive, got {interval}")
    refresher = None
    for param in parts[1:]:
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower()
            if refresher not in ("uac", "uas"):
                raise ValueError(f"refresher must be uac or uas, got {refresher!r}")
    return interval, refresher


def supports_timer(headers: Headers) -> bool:
    """Whether the message lists ``timer`` in Supported or Require (section 7.1)."""
    options = headers.get_all("Supported") + headers.get_all("Require")
    return any(o.strip().lower() == "timer" for o in options)


def negotiate_as_uas(headers: Headers, *, min_se: int, preferred: int) -> SessionTimer | None:
    """Our answer to an INVITE's session timer request (section 9).

    No Session-Expires: when the UAC supports timers we set our ``preferred`` interval with it as the
    refresher; otherwise None (we do not impose timers on a UA that cannot refresh; section 9 allows
    the UAS to refresh, which the B2BUA does on its own legs through their own timers).
    Raises ``SessionIntervalTooSmall`` below ``min_se``.
    """
    value = headers.get("Session-Expires")
    uac_supports = supports_timer(headers)
    if value is None:
        return SessionTimer(preferred, "uac") if uac_supports else None
    try:
        interval, refresher = parse_session_expires(value)
    except ValueError:
        return None
    if interval < min_se:
        raise SessionIntervalTooSmall(min_se)
    if refresher is None:
        refresher = "uac" if uac_supports else "uas"
    return SessionTimer(interval, refresher)


def negotiated_as_uac(headers: Headers, *, requested: int) -> SessionTimer | None:
    """The timer a 2xx to our INVITE settled on (section 7.2); without Session-Expires, none."""
    value = headers.get("Session-Expires")
    if value is None:
        return None
    try:
        interval, refresher = parse_session_expires(value)
    except ValueError:
        return SessionTimer(requested, "uac")
    return SessionTimer(interval, refresher or "uac")


def request_headers(headers: Headers, *, interval: int, min_se: int) -> None:
    """Add the session timer request of an INVITE we send (section 7.1)."""
    headers.set("Session-Expires", str(interval))
    headers.set("Min-SE", str(min_se))


def glare_retry_delay(owns_call_id: bool, rng: random.Random | None = None) -> float:
    """Seconds to wait before re-sending a re-INVITE that got 491 (RFC 3261 section 14.1).

    The UA that chose the dialog's Call-ID waits 2.1 to 4 s, the other 0 to 2 s, both in units of
    10 ms, so the two sides of a glare do not collide again.
    """
    draw = (rng or random).randint
    return (draw(210, 400) if owns_call_id else draw(0, 200)) / 100
