"""DID plan lookups and trunk source matching / failover order."""

from __future__ import annotations

from cti_server.calls.did_plan import DidPlan, digits_of
from cti_server.calls.trunks import TrunkDirectory, trunk_destination
from cti_server.config import DidConfig, TrunkConfig


def plan() -> DidPlan:
    return DidPlan([
        DidConfig(number="+1 555 0100", call_center="support", users=("1001",)),
        DidConfig(number="+44 20 7946 0000", call_center="uk", users=("1002", "1003")),
        DidConfig(number="200", call_center="short", queue="q"),
    ])


def test_digits_of_drops_plus_separators_and_params() -> None:
    assert digits_of("+1 (555) 0100;npdi") == "15550100"
    assert digits_of("abc") == ""


def test_exact_and_suffix_matches() -> None:
    dids = plan()
    assert dids.lookup("15550100") is not None
    assert dids.lookup("+15550100").call_center == "support"  # type: ignore[union-attr]
    # National form of the UK number (drops the country code 44): a unique suffix of at least 7 digits.
    assert dids.lookup("2079460000").call_center == "uk"  # type: ignore[union-attr]
    assert dids.lookup("200").queue == "q"  # type: ignore[union-attr]


def test_unknown_short_and_empty_numbers_do_not_match() -> None:
    dids = plan()
    assert dids.lookup("5550199") is None
    assert dids.lookup("00") is None  # short numbers never suffix-match
    assert dids.lookup("") is None
    assert dids.lookup("0100") is None


def test_ambiguous_suffix_does_not_match() -> None:
    dids = DidPlan([DidConfig(number="15550100", call_center="a", users=("1",)),
                    DidConfig(number="25550100", call_center="b", users=("2",))])
    assert dids.lookup("5550100") is None


def trunks() -> TrunkDirectory:
    return TrunkDirectory([
        TrunkConfig(name="backup", host="198.51.100.7", priority=20),
        TrunkConfig(name="main", host="carrier.example", allowed_sources=("192.0.2.0/28",), priority=10),
        TrunkConfig(name="pbx", host="10.1.1.1", outbound=False),
        TrunkConfig(name="v6", host="[2001:db8::1]", transport="tcp", port=5080),
    ])


def test_source_matching_uses_allowed_sources_or_host_ip() -> None:
    directory = trunks()
    assert directory.trunk_for_source("192.0.2.5").name == "main"  # type: ignore[union-attr]
    assert directory.trunk_for_source("192.0.2.16") is None
    assert directory.trunk_for_source("198.51.100.7").name == "backup"  # type: ignore[union-attr]
    assert directory.trunk_for_source("2001:db8::1").name == "v6"  # type: ignore[union-attr]
    assert directory.trunk_for_source("203.0.113.9") is None
    assert directory.trunk_for_source("not-an-ip") is None


def test_outbound_order_by_priority_skips_inbound_only() -> None:
    order = trunks().outbound_order()
    assert [t.name for t in order] == ["main", "backup", "v6"]
    assert trunk_destination(order[2]) == ("tcp", "[2001:db8::1]", 5080)
