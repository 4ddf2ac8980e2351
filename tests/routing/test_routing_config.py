"""The [routing] configuration section: defaults, environment overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti_server.config import ConfigError, config_from_mapping, load_config


def test_defaults_are_the_embedded_memory_backend() -> None:
    routing = config_from_mapping({}).routing
    assert routing.backend == "memory" and routing.default_push_timeout_s == 30.0


def test_environment_selects_redis(tmp_path: Path) -> None:
    path = tmp_path / "cti-server.toml"
    path.write_text("[routing]\nbackend = \"memory\"\n", encoding="utf-8")
    config = load_config(path, environ={"CTI_ROUTING__BACKEND": "redis", "CTI_ROUTING__SCAN_DEPTH": "50"})
    assert config.routing.backend == "redis" and config.routing.scan_depth == 50


@pytest.mark.parametrize(("values", "key"), [
    ({"backend": "etcd"}, "routing.backend"),
    ({"redis_url": "http://x"}, "routing.redis_url"),
    ({"timer_poll_s": 0}, "routing.timer_poll_s"),
    ({"default_push_timeout_s": -1}, "routing.default_push_timeout_s"),
    ({"scan_depth": "many"}, "routing.scan_depth"),
])
def test_bad_values_name_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_mapping({"routing": values})
    assert error.value.key == key
