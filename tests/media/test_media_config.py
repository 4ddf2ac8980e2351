"""The [media] configuration section: defaults, shipped file and validation naming the key."""

from pathlib import Path

import pytest

from cti_server.config import ConfigError, config_from_mapping, load_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_media_section_is_valid() -> None:
    media = load_config(REPO / "config" / "cti-server.toml", environ={}).media
    assert media.codecs == ("PCMU", "PCMA")
    assert media.rtp_port_min % 2 == 0
    assert media.ptime == 20
    assert media.dtmf_payload_type == 101
    assert media.symmetric_rtp is True
    assert media.rtcp_interval == 5.0
    assert media.receive_buffer_ms == 100


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"rtp_port_min": 20001}, "media.rtp_port_min"),
        ({"rtp_port_min": 80}, "media.rtp_port_min"),
        ({"rtp_port_min": 30000, "rtp_port_max": 30000}, "media.rtp_port_max"),
        ({"codecs": ["G729"]}, "media.codecs"),
        ({"codecs": []}, "media.codecs"),
        ({"ptime": 25}, "media.ptime"),
        ({"dtmf_payload_type": 8}, "media.dtmf_payload_type"),
        ({"rtp_timeout": -1}, "media.rtp_timeout"),
        ({"rtcp_interval": -5}, "media.rtcp_interval"),
        ({"receive_buffer_ms": -1}, "media.receive_buffer_ms"),
        ({"symmetric_rtp": "yes"}, "media.symmetric_rtp"),
    ],
)
def test_bad_media_values_name_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"media": values})
    assert info.value.key == key
