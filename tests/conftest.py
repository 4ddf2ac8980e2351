"""Shared fixtures: configs on free loopback ports."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from cti_server.config import Config, config_from_mapping


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair found")


def make_config(**sections: Any) -> Config:
    """A validated Config on free ports, with ``sections`` merged over the defaults."""
    sip_port = free_port()
    data: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": 0},
        "sip": {"host": "127.0.0.1", "udp_port": sip_port, "tcp_port": sip_port,
                "users": [{"username": "1001", "password": "secret1001"},
                          {"username": "1002", "password": "secret1002"}]},
        "log": {"format": "json", "level": "warning"},
        # A store file of this config's own, so servers started by tests never share var/cti-server.db.
        "store": {"url": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='cti-store-')}/store.db"},
        "auth": {"password_memory_kib": 1024, "password_time_cost": 1},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_mapping(data)


@pytest.fixture
def config() -> Iterator[Config]:
    yield make_config()
