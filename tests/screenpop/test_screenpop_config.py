"""The [screenpop] configuration section: defaults, validation naming the key, environment overrides."""

from __future__ import annotations

import pytest

from cti_server.config import ConfigError, config_from_mapping, load_config


def test_defaults_give_a_200_ms_deadline() -> None:
    config = config_from_mapping({})
    assert config.screenpop.deadline_ms == 200
    assert config.screenpop.webhooks.max_attempts >= 1


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ({}, "deadline_ms", 0, "screenpop.deadline_ms"),
        ({}, "max_matches", 0, "screenpop.max_matches"),
        ({}, "default_region", "usa", "screenpop.default_region"),
        ({}, "deadline_ms", "fast", "screenpop.deadline_ms"),
        ({"webhooks": {}}, "backoff_cap", 0.5, "screenpop.webhooks.backoff_cap"),
    ],
)
def test_bad_values_name_the_key(section: dict[str, object], key: str, value: object, named: str) -> None:
    data: dict[str, object] = dict(section)
    if "webhooks" in section:
        data["webhooks"] = {key: value}
    else:
        data[key] = value
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"screenpop": data})
    assert info.value.key == named


def test_environment_overrides_the_deadline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text("[screenpop]\ndeadline_ms = 150\n")
    config = load_config(path, {"CTI_SCREENPOP__DEADLINE_MS": "50"})
    assert config.screenpop.deadline_ms == 50
