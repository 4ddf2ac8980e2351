"""Trunk interop profiles: the registry, the built-in rewrites, config naming the key of an unknown name;
the glare retry delay."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

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
from cti_server.sip.message import SipRequest, SipResponse
from cti_server.sip.uri import parse_uri


def invite_headers() -> Headers:
    return Headers([("Supported", "timer, replaces"), ("Session-Expires", "1800;refresher=uac"),
                    ("Min-SE", "90"), ("Require", "timer"), ("Allow", "INVITE, UPDATE")])


def invite(headers: Headers) -> SipRequest:
    return SipRequest("INVITE", parse_uri("sip:15550100@192.0.2.1"), headers)


def test_generic_is_the_default_and_changes_nothing() -> None:
    assert get_profile("") is get_profile(DEFAULT_PROFILE)
    request = invite(invite_headers())
    get_profile("").outgoing(request)
    get_profile("").incoming(request)
    assert request.headers == invite_headers()


def test_no_session_timer_strips_rfc_4028_both_ways() -> None:
    profile = get_profile("no_session_timer")
    for rewrite in (profile.outgoing, profile.incoming):
        headers = invite_headers()
        headers.add("x", "600")  # compact Session-Expires
        rewrite(invite(headers))
        assert "Session-Expires" not in headers and "Min-SE" not in headers
        assert headers.get_all("Supported") == ["replaces"]
        assert "Require" not in headers  # it only required timer
        assert headers.get_all("Allow") == ["INVITE", "UPDATE"]
    untouched = Headers([("Supported", "replaces")])
    without_session_timer(untouched)
    assert untouched == Headers([("Supported", "replaces")])


@pytest.fixture
def restore_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = dict(trunk_profiles._PROFILES)
    monkeypatch.setattr(trunk_profiles, "_plugins_loaded", trunk_profiles._plugins_loaded)
    yield
    trunk_profiles._PROFILES.clear()
    trunk_profiles._PROFILES.update(saved)


@pytest.mark.usefixtures("restore_registry")
def test_an_adapter_registers_its_profile_and_config_accepts_it() -> None:
    def tag_outgoing(message: SipRequest | SipResponse) -> None:
        message.headers.set("X-Vendor", "yes")

    with pytest.raises(ConfigError) as info:
        config_from_mapping({"calls": {"trunks": [{"name": "cucm", "host": "192.0.2.1",
                                                   "profile": "vendor"}]}})
    assert info.value.key == "calls.trunks[0].profile"
    assert "vendor" in str(info.value) and "generic" in str(info.value)
    register_profile(TrunkProfile("vendor", outgoing=tag_outgoing))
    assert "vendor" in profile_names()
    config = config_from_mapping({"calls": {"trunks": [{"name": "cucm", "host": "192.0.2.1",
                                                        "profile": "vendor"}]}})
    request = invite(Headers())
    get_profile(config.calls.trunks[0].profile).outgoing(request)
    assert request.headers.get("X-Vendor") == "yes"
    with pytest.raises(ValueError):
        register_profile(TrunkProfile("vendor"))
    register_profile(TrunkProfile("vendor"), replace=True)
    with pytest.raises(ValueError):
        register_profile(TrunkProfile(""))


PLUGIN = TrunkProfile("plugged", description="from an installed adapter")


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    loaded: object

    def load(self) -> object:
        if isinstance(self.loaded, Exception):
            raise self.loaded
        return self.loaded


@pytest.mark.usefixtures("restore_registry")
def test_installed_adapters_profiles_are_loaded_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    groups: list[str] = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        groups.append(group)
        return [FakeEntryPoint("plugged", "vendor.profile:PROFILE", PLUGIN),
                FakeEntryPoint("broken", "vendor.broken:PROFILE", ImportError("no module vendor")),
                FakeEntryPoint("wrong", "vendor.wrong:PROFILE", "not a profile")]

    monkeypatch.setattr(trunk_profiles, "entry_points", fake_entry_points)
    monkeypatch.setattr(trunk_profiles, "_plugins_loaded", False)
    config = config_from_mapping({"calls": {"trunks": [{"name": "t", "host": "192.0.2.1",
                                                        "profile": "plugged"}]}})
    assert get_profile(config.calls.trunks[0].profile) is PLUGIN
    assert "broken" not in profile_names() and "wrong" not in profile_names()
    assert groups == [trunk_profiles.ENTRY_POINT_GROUP]  # looked up once


def test_glare_retry_delay_follows_rfc_3261_14_1() -> None:
    rng = random.Random(7)
    owner = [glare_retry_delay(True, rng) for _ in range(500)]
    other = [glare_retry_delay(False, rng) for _ in range(500)]
    assert all(2.1 <= d <= 4.0 for d in owner) and all(0.0 <= d <= 2.0 for d in other)
    assert all(round(d * 100) == pytest.approx(d * 100) for d in owner + other)  # 10 ms units
    assert max(owner) - min(owner) > 1.0 and max(other) - min(other) > 1.0  # random, not fixed
