"""How a call that failed ends: the final response for the caller and the reason on the call.

After every B-leg failed the caller gets one final response chosen as RFC 3261 section 16.7 step 6
suggests for a forking proxy; ``end_reason_for`` turns a status into the ``EndReason`` of the call event.
"""

from __future__ import annotations

from cti_server.calls.model import EndReason

END_REASONS: dict[int, EndReason] = {
    486: EndReason.BUSY, 600: EndReason.BUSY, 603: EndReason.DECLINED, 404: EndReason.NOT_FOUND,
    604: EndReason.NOT_FOUND, 484: EndReason.NOT_FOUND, 403: EndReason.FORBIDDEN, 480: EndReason.UNAVAILABLE,
    408: EndReason.NO_ANSWER, 487: EndReason.CANCELLED,
}  # fmt: skip


def end_reason_for(status: int) -> EndReason:
    """Why a call that got final ``status`` ended."""
    return END_REASONS.get(status, EndReason.FAILED)


def best_failure(statuses: list[int]) -> int:
    """The final response for the caller when every B-leg failed (after RFC 3261 section 16.7 step 6).

    6xx wins; then busy; then another client error (auth failures at a trunk are our problem: 403);
    timeouts and unavailability are 480; only server errors left: 503.
    """
    if not statuses:
        return 480
    for status in statuses:
        if status >= 600:
            return status
    if 486 in statuses:
        return 486
    clients = sorted(s for s in statuses if 400 <= s < 500 and s not in (408, 480, 487))
    if clients:
        return 403 if clients[0] in (401, 407) else clients[0]
    if any(s in (408, 480, 487) for s in statuses):
        return 480
    return 503
