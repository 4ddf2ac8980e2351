"""The [calls] section: trunks, the DID plan and timers, validated with the key named."""

from __future__ import annotations

from typing import Any

import pytest

from cti_server.config import ConfigError, config_from_mapping


def calls(**values: Any) -> dict[str, Any]:
    return {"calls": values}


def test_trunks_and_dids_load() -> None:
    config = config_from_mapping(calls(
        trunks=[{"name": "a", "host": "192.0.2.1", "allowed_sources": ["192.0.2.0/28", "10.0.0.1"],
                 "username": "u", "password": "p", "priority": 5},
                {"name": "b", "host": "pbx.example", "port": 5080, "transport": "tcp"}],
        dids=[{"number": "+1 555 0100", "call_center": "support", "users": ["1001", "1002"]},
              {"number": "5550101", "call_center": "sales", "queue": "sales"}],
        no_answer_timeout=20,
    ))
    assert [t.name for t in config.calls.trunks] == ["a", "b"]
    assert config.calls.trunks[0].allowed_sources == ("192.0.2.0/28", "10.0.0.1")
    assert config.calls.trunks[1].transport == "tcp"
    assert config.calls.dids[0].users == ("1001", "1002")
    assert config.calls.dids[1].queue == "sales"
    assert config.calls.no_answer_timeout == 20.0


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (calls(trunks=[{"name": "a", "host": "h", "transport": "sctp"}]), "calls.trunks[0].transport"),
        (calls(trunks=[{"name": "a", "host": "h", "allowed_sources": ["10.0.0.300"]}]),
         "calls.trunks[0].allowed_sources"),
        (calls(trunks=[{"name": "a", "host": "h", "username": "u"}]), "calls.trunks[0].username"),
        (calls(trunks=[{"name": "a", "host": "h", "port": 70000}]), "calls.trunks[0].port"),
        (calls(trunks=[{"host": "h"}]), "calls.trunks[0].name"),
        (calls(trunks=[{"name": "a", "host": "h"}, {"name": "a", "host": "i"}]), "calls.trunks"),
        (calls(dids=[{"number": "abc", "call_center": "c", "users": ["1"]}]), "calls.dids[0].number"),
        (calls(dids=[{"number": "1", "call_center": "c"}]), "calls.dids[0].users"),
        (calls(dids=[{"number": "1", "call_center": "c", "users": ["1"], "queue": "q"}]),
         "calls.dids[0].users"),
        (calls(dids=[{"number": "+1", "call_center": "c", "users": ["1"]},
                     {"number": "1", "call_center": "d", "users": ["2"]}]), "calls.dids"),
        (calls(min_se=30), "calls.min_se"),
        (calls(session_expires=100, min_se=120), "calls.session_expires"),
        (calls(no_answer_timeout=0), "calls.no_answer_timeout"),
    ],
)
def test_bad_calls_values_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data)
    assert info.value.key == key
