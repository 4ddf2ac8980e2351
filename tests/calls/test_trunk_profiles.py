"""Trunk interop profiles: the registry, the built-in rewrites, config naming the key of an unknown name;
the glare retry delay."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from cti_server.calls import trunk_profiles
from cti_server.calls.session_timer import glare_retry_delay
from cti_server.calls.trunk_profiles import (
    DEFAULT_PROFILE,
    TrunkProfile,
    get_profile,
    profile_names,
    register_profile,
    without_session_timer,
)
from cti_server.config import ConfigError, config_from_mapping
from cti_server.sip.headers import Headers


def invite_headers() -> Headers:
    return Headers([("Supported", "timer, replaces"), ("Session-Expires", "1800;refresher=uac"),
                    ("Min-SE", "90"), ("Require", "timer"), ("Allow", "INVITE, UPDATE")])


def test_generic_is_the_default_and_changes_nothing() -> None:
    assert get_profile("") is get_profile(DEFAULT_PROFILE)
    headers = invite_headers()
    get_profile("").outgoing(headers)
    get_profile("").incoming(headers)
    assert headers == invite_headers()


def test_no_session_timer_strips_rfc_4028_both_ways() -> None:
    profile = get_profile("no_session_timer")
    for rewrite in (profile.outgoing, profile.incoming):
        headers = invite_headers()
        headers.add("x", "600")  # compact Session-Expires
        rewrite(headers)
        assert "Session-Expires" not in headers and "Min-SE" not in headers
        assert headers.get_all("Supported") == ["replaces"]
        assert "Require" not in headers  # it only required timer
        assert headers.get_all("Allow") == ["INVITE", "UPDATE"]
    untouched = Headers([("Supported", "replaces")])
    without_session_timer(untouched)
    assert untouched == Headers([("Supported", "replaces")])


@pytest.fixture
def restore_registry() -> Iterator[None]:
    saved = dict(trunk_profiles._PROFILES)
    yield
    trunk_profiles._PROFILES.clear()
    trunk_profiles._PROFILES.update(saved)


@pytest.mark.usefixtures("restore_registry")
def test_an_adapter_registers_its_profile_and_config_accepts_it() -> None:
    def tag_outgoing(headers: Headers) -> None:
        headers.set("X-Vendor", "yes")

    with pytest.raises(ConfigError) as info:
        config_from_mapping({"calls": {"trunks": [{"name": "cucm", "host": "192.0.2.1",
                                                   "profile": "vendor"}]}})
    assert info.value.key == "calls.trunks[0].profile"
    assert "vendor" in str(info.value) and "generic" in str(info.value)
    register_profile(TrunkProfile("vendor", outgoing=tag_outgoing))
    assert "vendor" in profile_names()
    config = config_from_mapping({"calls": {"trunks": [{"name": "cucm", "host": "192.0.2.1",
                                                        "profile": "vendor"}]}})
    headers = Headers()
    get_profile(config.calls.trunks[0].profile).outgoing(headers)
    assert headers.get("X-Vendor") == "yes"
    with pytest.raises(ValueError):
        register_profile(TrunkProfile("vendor"))
    register_profile(TrunkProfile("vendor"), replace=True)
    with pytest.raises(ValueError):
        register_profile(TrunkProfile(""))


def test_glare_retry_delay_follows_rfc_3261_14_1() -> None:
    rng = random.Random(7)
    owner = [glare_retry_delay(True, rng) for _ in range(500)]
    other = [glare_retry_delay(False, rng) for _ in range(500)]
    assert all(2.1 <= d <= 4.0 for d in owner) and all(0.0 <= d <= 2.0 for d in other)
    assert all(round(d * 100) == pytest.approx(d * 100) for d in owner + other)  # 10 ms units
    assert max(owner) - min(owner) > 1.0 and max(other) - min(other) > 1.0  # random, not fixed
