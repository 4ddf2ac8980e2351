"""The endpoint's log lines carry its call, leg and port although the logger is bound only when used."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import LogCapture

from cti_server.media.endpoint import RtpEndpoint
from cti_server.media.ports import RtpPortAllocator


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    saved = structlog.get_config()
    records = LogCapture()
    debug = structlog.make_filtering_bound_logger(logging.DEBUG)
    structlog.configure(processors=[records], wrapper_class=debug, cache_logger_on_first_use=False)
    try:
        yield records
    finally:
        structlog.configure(**saved)


async def test_close_logs_counters_with_the_endpoints_context_at_debug_only(
        capture: LogCapture) -> None:
    records = capture
    allocator = RtpPortAllocator(41000, 41099)
    endpoint = await RtpEndpoint.open("127.0.0.1", allocator, call_id="c-1", leg="a", rtcp_interval=0)
    port = endpoint.port
    endpoint.close()
    closed = [e for e in records.entries if e["event"] == "rtp_endpoint_closed"]
    assert len(closed) == 1
    assert closed[0]["call_id"] == "c-1" and closed[0]["leg"] == "a" and closed[0]["port"] == port
    assert closed[0]["log_level"] == "debug" and "packets_received" in closed[0]

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    records.entries.clear()
    quiet = await RtpEndpoint.open("127.0.0.1", allocator, call_id="c-2", leg="b", rtcp_interval=0)
    quiet.close()
    assert records.entries == []
    assert quiet._bound_log is None  # nothing logged: no logger was bound
