from pathlib import Path

import pytest

from cti_server.config import ConfigError, config_from_mapping, load_config

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config" / "cti-server.toml", environ={})
    assert config.sip.udp_port == 5060
    assert config.http.port == 8080
    assert config.sip.timers.t1 == 0.5
    assert [u.username for u in config.sip.users] == ["1001", "1002"]
    assert config.calls.ring_again_after == 5.0


def test_env_overrides_nested_keys() -> None:
    config = load_config(
        REPO / "config" / "cti-server.toml",
        environ={"CTI_SIP__UDP_PORT": "5070", "CTI_SIP__TIMERS__T1": "0.25", "CTI_LOG__FORMAT": "json",
                 "CTI_HTTP__HOST": "0.0.0.0"},
    )
    assert config.sip.udp_port == 5070
    assert config.sip.timers.t1 == 0.25
    assert config.log.format == "json"
    assert config.http.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"sip": {"udp_port": "abc"}}, "sip.udp_port"),
        ({"sip": {"udp_port": 70000}}, "sip.udp_port"),
        ({"sip": {"bogus": 1}}, "sip.bogus"),
        ({"sip": {"timers": {"t1": "fast"}}}, "sip.timers.t1"),
        ({"log": {"format": "xml"}}, "log.format"),
        ({"sip": {"users": [{"username": "x"}]}}, "sip.users[0].password"),
        ({"sip": {"users": [{"password": "x"}]}}, "sip.users[0].username"),
        ({"nosuchsection": {}}, "nosuchsection"),
        ({"sip": {"min_expires": 7200}}, "sip.min_expires"),
        ({"calls": {"ring_again_after": -1}}, "calls.ring_again_after"),
        ({"calls": {"dids": [{"number": "100", "call_center": "cc", "queue": "q", "waiting": "jazz"}]}},
         "calls.dids[0].waiting"),
        ({"media": {"ringback_tone": "mars"}}, "media.ringback_tone"),
        ({"sip": {"registrar": {"lock_lease": 0}}}, "sip.registrar.lock_lease"),
        ({"sip": {"registrar": {"lock_wait": -1}}}, "sip.registrar.lock_wait"),
        ({"sip": {"registrar": {"bindings": "postgres"}}}, "sip.registrar.bindings"),
        ({"sip": {"registrar": {"redis_url": "127.0.0.1:6379"}}}, "sip.registrar.redis_url"),
        ({"sip": {"registrar": {"redis_prefix": ""}}}, "sip.registrar.redis_prefix"),
        ({"server": {"shutdown_grace": -1}}, "server.shutdown_grace"),
    ],
)
def test_bad_values_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data)
    assert info.value.key == key
    assert str(info.value).startswith(key + ":")


def test_cli_reports_bad_config(tmp_path: Path) -> None:
    from cti_server.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nport = 'eighty'\n")
    assert main(["run", "--config", str(bad)]) == 2


def test_cli_reports_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import signal
    import socket

    from cti_server.cli import main

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = tmp_path / "busy.toml"
        config.write_text(
            f'[http]\nport = 0\n[sip]\nudp_port = {port}\ntcp_port = 0\n'
            f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path}/cti.db"\n[log]\nlevel = "error"\n'
        )
        before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "cannot start" in err and str(port) in err
    # The run's SIGINT/SIGTERM handlers went with it (uvloop would leave them on its closed loop).
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_cli_reports_unreachable_registrar_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cti_server.cli import main

    config = tmp_path / "redis.toml"
    config.write_text(
        '[http]\nport = 0\n[sip]\nudp_port = 0\ntcp_port = 0\n'
        '[sip.registrar]\nbindings = "redis"\nredis_url = "redis://127.0.0.1:1/0"\n'
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path}/cti.db"\n[log]\nlevel = "error"\n'
    )
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "cannot start" in err and "sip.registrar" in err and "127.0.0.1:1" in err


def test_registrar_lock_settings_reach_the_redis_bindings_store() -> None:
    from cti_server.server import build_bindings
    from cti_server.sip.redis_bindings import RedisBindings

    config = config_from_mapping({"sip": {"registrar": {
        "bindings": "redis", "redis_url": "redis://127.0.0.1:6379/0", "lock_lease": 3.5, "lock_wait": 0.5}}})
    store, components = build_bindings(config)  # connects lazily: nothing is sent here
    assert isinstance(store, RedisBindings) and components == [store]
    assert (store.lock_lease, store.lock_wait) == (3.5, 0.5)
