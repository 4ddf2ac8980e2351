"""Browser end-to-end fixtures: the real ``cti-server run`` process and headless Chromium.

One server and one browser per test session (each test gets its own browser context, so cookies never
leak between tests). The server runs as a subprocess on free loopback ports with its own SQLite store,
and its first admin is made with the ``cti-server admin create-admin`` CLI against the same config, the
way an operator does it. Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright; nothing is
downloaded (never ``playwright install``). Every test here is marked ``e2e``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # For the softphone: a fake microphone, and no permission prompt for it.
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 30.0
BROWSER_LAUNCH_TIMEOUT_MS = 20_000
PAGE_TIMEOUT_MS = 5_000
ADMIN_USERNAME = "e2e-admin"
ADMIN_PASSWORD = "e2e-admin-password"
SCREENSHOTS_ENV = "CTI_E2E_SCREENSHOTS"
ReportHook = Generator[None, pytest.TestReport, pytest.TestReport]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as ``e2e`` (``-m "not e2e"`` leaves the browser out)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say it at the end of every run, even with ``-q``, when the browser tests could not run."""
    if not CHROMIUM.exists() and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line(f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing "
                                    "(apt-get install chromium, or scripts/setup.sh --test as root)",
                                    red=True, bold=True)


class ApiError(Exception):
    """A REST call answered with an error status; ``status`` and the JSON ``body`` say which."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class RunningServer:
    """A ``cti-server run`` subprocess and how to reach it."""

    process: subprocess.Popen[bytes]
    http_port: int
    config_path: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.http_port}"

    def log_text(self) -> str:
        """What the server has logged so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            token: str | None = None) -> dict[str, Any]:
        """One JSON REST call; raises ApiError on a non-2xx answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error_body = json.loads(raw)
            except ValueError:
                error_body = {"raw": raw.decode(errors="replace")}
            raise ApiError(exc.code, error_body) from None

    def login(self, username: str, password: str) -> str:
        """A session token for ``username`` (``POST /api/v1/login``)."""
        token: str = self.api("POST", "/api/v1/login", {"username": username, "password": password})["token"]
        return token

    def healthy(self) -> bool:
        """True once ``GET /healthz`` answers."""
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def _environment() -> dict[str, str]:
    # No CTI_* override from the calling shell may change the server under test.
    env = {name: value for name, value in os.environ.items() if not name.startswith("CTI_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _cli(config_path: Path, *arguments: str, stdin: str = "") -> str:
    """Run ``cti-server <arguments> --config <config_path>``; its stdout, or fail with its output."""
    command = [sys.executable, "-m", "cti_server", *arguments, "--config", str(config_path)]
    done = subprocess.run(command, input=stdin.encode(), capture_output=True, timeout=CLI_TIMEOUT,
                          cwd=config_path.parent, env=_environment(), check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(arguments)} exited {done.returncode}:\n{done.stdout.decode()}"
                    f"{done.stderr.decode()}")
    return done.stdout.decode()


def _write_config(directory: Path, http_port: int, sip_port: int) -> Path:
    config_path = directory / "cti-server.toml"
    config_path.write_text(
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
        f'[sip]\nhost = "127.0.0.1"\nudp_port = {sip_port}\ntcp_port = {sip_port}\n'
        f'[store]\nurl = "sqlite+aiosqlite:///{directory}/cti.db"\n'
        # Cheap argon2id: logins in the browser tests should not each cost 64 MiB and a second.
        "[auth]\npassword_memory_kib = 1024\npassword_time_cost = 1\n"
        '[log]\nlevel = "info"\nformat = "json"\n'
    )
    return config_path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def running_server(config_path: Path, http_port: int) -> Iterator[RunningServer]:
    """``cti-server run --config config_path`` (working directory: the config's), once /healthz answers;
    stopped on exit, and the test fails unless it stopped cleanly with no traceback in its log."""
    directory = config_path.parent
    log_path = directory / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "cti_server", "run", "--config", str(config_path)],
                                   cwd=directory, stdout=log, stderr=subprocess.STDOUT, env=_environment())
    server = RunningServer(process, http_port, config_path, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.healthy():
            if process.poll() is not None:
                pytest.fail(f"cti-server exited {process.returncode} at start:\n{server.log_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"cti-server did not answer /healthz in {START_TIMEOUT} s:\n{server.log_text()}")
            time.sleep(0.1)
        yield server
    finally:
        _stop(process)
    # What the tests did must not have hurt the server: a clean stop, no traceback in its log.
    if process.returncode != 0 or "Traceback" in server.log_text():
        pytest.fail(f"cti-server exited {process.returncode} after the browser tests:\n{server.log_text()}")


def create_admin(config_path: Path) -> None:
    """The first admin (``ADMIN_USERNAME`` / ``ADMIN_PASSWORD``), made with the CLI as an operator does."""
    _cli(config_path, "admin", "create-admin", ADMIN_USERNAME, "--password-stdin",
         stdin=ADMIN_PASSWORD + "\n")


@pytest.fixture(scope="session")
def cti_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The real server on free loopback ports with a fresh SQLite store and one admin
    (``ADMIN_USERNAME`` / ``ADMIN_PASSWORD``), made with the CLI before the server starts."""
    directory = tmp_path_factory.mktemp("e2e-server")
    http_port = free_port(socket.SOCK_STREAM)
    config_path = _write_config(directory, http_port, free_port())
    create_admin(config_path)
    with running_server(config_path, http_port) as server:
        yield server


@pytest.fixture(scope="session")
def admin_token(cti_server: RunningServer) -> str:
    """A session token of the CLI-made admin, for setting up and checking through the REST API."""
    return cti_server.login(ADMIN_USERNAME, ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver (the sync API: these tests are plain functions, the server a subprocess).

    Module scope, not session: the sync API keeps its own event loop marked as running in this thread
    while it is open, and the asyncio tests collected after tests/e2e would then fail to start theirs.
    """
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium, one per test module; the e2e tests skip only if it is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; install Debian's chromium package "
                    "(scripts/setup.sh --test does it as root)")
    launched = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                                 timeout=BROWSER_LAUNCH_TIMEOUT_MS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def page(browser: Browser, cti_server: RunningServer, tmp_path: Path,
         request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page in its own browser context (no cookies), with bounded timeouts; on a failed test a
    screenshot is saved into the test's tmp_path and named in the report."""
    context: BrowserContext = browser.new_context(base_url=cti_server.base_url,
                                                  viewport={"width": 1280, "height": 800})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    context.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
    opened = context.new_page()
    console: list[str] = []
    opened.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    opened.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    try:
        yield opened
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            shot = tmp_path / "failure.png"
            opened.screenshot(path=str(shot), full_page=True)
            report.sections.append(("e2e", f"screenshot: {shot}\nbrowser console:\n" + "\n".join(console)))
        context.close()


def snapshot(page: Page, name: str) -> None:
    """Save a screenshot as ``$CTI_E2E_SCREENSHOTS/<name>.png`` when that variable names a directory
    (for a person to look at the pages); nothing otherwise."""
    directory = os.environ.get(SCREENSHOTS_ENV)
    if directory:
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> ReportHook:
    """Keep the call phase's report on the item so the ``page`` fixture knows a test failed."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
