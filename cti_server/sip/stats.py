"""SIP statistics counters, readable while the server runs (``GET /api/v1/sip/stats``).

What operators of Kamailio/OpenSIPS expect to see: messages in and out per transport, parse errors,
garbage dropped, transactions created and how they ended, and answers the stack gave by itself.
"""

from __future__ import annotations

COUNTER_NAMES: tuple[str, ...] = (
    "udp_datagrams_in", "udp_datagrams_out",
    "requests_in", "responses_in", "requests_out", "responses_out",
    "parse_errors", "garbage_dropped", "oversize_messages", "keepalives_in",
    "stream_framing_errors", "transport_errors", "handler_errors", "logs_suppressed",
    "connections_opened", "connections_closed", "connections_idle_closed",
    "server_transactions_created", "client_transactions_created",
    "retransmissions_absorbed", "retransmissions_sent",
    "transactions_timed_out", "transactions_terminated",
    "responses_unmatched", "acks_unmatched",
    "options_answered", "answered_400", "answered_405", "answered_481", "answered_483",
    "answered_500", "answered_501", "answered_513",
)  # fmt: skip


class SipStats(dict[str, int]):
    """Counters by name (every name in ``COUNTER_NAMES`` starts at 0); a plain dict so the hot path
    increments with one ``stats[name] += 1``."""

    def __init__(self) -> None:
        super().__init__(dict.fromkeys(COUNTER_NAMES, 0))

    def snapshot(self) -> dict[str, int]:
        """A copy for reporting."""
        return dict(self)
