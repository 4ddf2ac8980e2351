"""``server.event_loop``: which loop ``cti-server run`` uses, and the key's validation."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from cti_server.config import ConfigError, config_from_mapping
from cti_server.event_loop import MEDIA_SWITCH_INTERVAL, loop_factory, run_on_event_loop, tune_switch_interval


def test_default_is_auto_and_a_bad_choice_names_the_key() -> None:
    assert config_from_mapping({}).server.event_loop == "auto"
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"server": {"event_loop": "trio"}})
    assert caught.value.key == "server.event_loop"


def test_asyncio_choice_runs_on_the_standard_loop() -> None:
    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loop_factory("asyncio") is None
    assert run_on_event_loop("asyncio", loop_type()).startswith("asyncio")


def test_auto_and_uvloop_run_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")  # a runtime dependency; absent only in a stripped-down install

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_on_event_loop("auto", loop_type()).startswith("uvloop")
    assert run_on_event_loop("uvloop", loop_type()).startswith("uvloop")


@pytest.fixture
def switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("switch_interval")
def test_the_media_thread_gets_a_short_gil_switch_interval_at_start_up() -> None:
    tune_switch_interval(media_thread=False)
    assert sys.getswitchinterval() == pytest.approx(0.005)
    tune_switch_interval(media_thread=True)
    assert sys.getswitchinterval() == pytest.approx(MEDIA_SWITCH_INTERVAL)
