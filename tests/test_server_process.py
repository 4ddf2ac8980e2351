"""The real ``cti-server run`` process: it comes up, answers HTTP and SIP, survives bad input, stops on
SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
ADMIN, ADMIN_PASSWORD = "root-admin", "a long admin password"


def options(port: int, branch: str) -> bytes:
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


class Server:
    def __init__(self, process: subprocess.Popen[bytes], http_port: int, sip_port: int, log: Path) -> None:
        self.process = process
        self.http_port = http_port
        self.sip_port = sip_port
        self.log = log

    def healthz(self) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as resp:
                body: dict[str, object] = json.loads(resp.read())
                return body
        except OSError:
            return None

    def admin_get(self, path: str) -> object:
        """GET ``path`` as the admin the fixture created (logs in through the API)."""
        base = f"http://127.0.0.1:{self.http_port}"
        login = urllib.request.Request(
            f"{base}/api/v1/login", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"username": ADMIN, "password": ADMIN_PASSWORD}).encode())
        with urllib.request.urlopen(login, timeout=5) as resp:
            token = json.loads(resp.read())["token"]
        get = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(get, timeout=5) as resp:
            return json.loads(resp.read())

    def sip_exchange(self, data: bytes, sock: socket.socket, timeout: float = 1.0) -> bytes | None:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", self.sip_port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    config = tmp_path / "cti-server.toml"
    config.write_text(
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
        f'[sip]\nhost = "127.0.0.1"\nudp_port = {sip_port}\ntcp_port = {sip_port}\n'
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path}/cti.db"\n'
        '[log]\nlevel = "info"\nformat = "json"\n'
        '[auth]\npassword_memory_kib = 1024\npassword_time_cost = 1\n'
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run(
        [sys.executable, "-m", "cti_server", "admin", "create-admin", "--config", str(config),
         "--password-stdin", ADMIN],
        input=ADMIN_PASSWORD.encode(), cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60,
    )
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cti_server", "run", "--config", str(config)],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    running = Server(process, http_port, sip_port, log)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def wait_until_up(server: Server, sock: socket.socket) -> bytes:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert server.process.poll() is None, f"server exited early:\n{server.log.read_text()}"
        if server.healthz() is not None:
            answer = server.sip_exchange(options(sock.getsockname()[1], "z9hG4bKup"), sock, timeout=0.5)
            if answer is not None:
                return answer
        time.sleep(0.2)
    raise AssertionError(f"server did not come up in {START_TIMEOUT} s:\n{server.log.read_text()}")


def test_server_process_serves_survives_garbage_and_stops_cleanly(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        answer = wait_until_up(server, sock)
        assert answer.startswith(b"SIP/2.0 200 OK\r\n") and b"\r\nAllow: " in answer

        malformed = options(port, "z9hG4bKbad").replace(b"Max-Forwards: 70", b"Max-Forwards: x")
        reply = server.sip_exchange(malformed, sock)
        assert reply is not None and reply.startswith(b"SIP/2.0 400 Bad Request (invalid Max-Forwards")
        assert server.sip_exchange(b"\x00\x01garbage\xff" * 10, sock, timeout=0.3) is None

        answer = server.sip_exchange(options(port, "z9hG4bKafter"), sock)
        assert answer is not None and answer.startswith(b"SIP/2.0 200 OK\r\n")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/api/v1/sip/stats", timeout=2)
        assert refused.value.code == 401
        stats = server.admin_get("/api/v1/sip/stats")
        assert isinstance(stats, dict)
        counters = stats["counters"]
        assert counters["answered_400"] == 1 and counters["garbage_dropped"] == 1
        assert counters["options_answered"] >= 2

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=STOP_TIMEOUT) == 0, server.log.read_text()
    log_lines = server.log.read_text()
    assert "server_stopping" in log_lines and "Traceback" not in log_lines
