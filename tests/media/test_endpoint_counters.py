"""RtpCounters.as_dict names every counter in field order; a closed endpoint's RTCP timer lets it go."""

from __future__ import annotations

import gc
import weakref
from dataclasses import fields

from cti_server.media.endpoint import RtpCounters, RtpEndpoint
from cti_server.media.ports import RtpPortAllocator


def test_as_dict_names_every_counter_in_field_order() -> None:
    counters = RtpCounters(*range(1, len(fields(RtpCounters)) + 1))
    assert counters.as_dict() == {f.name: getattr(counters, f.name) for f in fields(RtpCounters)}
    assert list(counters.as_dict()) == [f.name for f in fields(RtpCounters)]


async def test_a_closed_endpoint_is_not_held_by_its_pending_rtcp_report_timer() -> None:
    allocator = RtpPortAllocator(41000, 41099)
    endpoint = await RtpEndpoint.open("127.0.0.1", allocator, call_id="c", leg="a", rtcp_interval=60.0)
    ref = weakref.ref(endpoint)
    endpoint.close()
    del endpoint
    gc.collect()
    assert ref() is None
