"""``cti-server admin ...``: migrate, the first admin, call centers, users, assign, API keys, who."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from cti_server.cli import main
from cti_server.config import StoreConfig
from cti_server.store import Store
from cti_server.store.credentials import api_key_for
from cti_server.store.migrate import head_revision
from cti_server.store.models import AuditEntry


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/var/cli.db"
    monkeypatch.setenv("CTI_STORE__URL", url)
    monkeypatch.setenv("CTI_AUTH__PASSWORD_MEMORY_KIB", "1024")
    monkeypatch.setenv("CTI_AUTH__PASSWORD_TIME_COST", "1")
    monkeypatch.setenv("CTI_LOG__LEVEL", "warning")
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    import sys

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(["admin", *argv])
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, out, err


def test_admin_commands_set_up_a_store(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    head = head_revision()
    assert run(capsys, "migrate")[1].endswith(f"revision (empty) -> {head}\n")
    assert f"already at revision {head}" in run(capsys, "migrate")[1]
    code, out, _ = run(capsys, "create-admin", "root", "--password-stdin", stdin="root-password\n")
    assert code == 0 and out.startswith("created admin root")
    assert run(capsys, "create-call-center", "Alpha", "--region", "GB")[0] == 0
    assert run(capsys, "create-call-center", "Beta")[0] == 0
    code, out, _ = run(capsys, "create-user", "bob", "--role", "agent", "--call-center", "Alpha",
                       "--password-stdin", stdin="bob-password\n")
    assert code == 0 and out.strip().endswith("in Alpha")
    code, out, _ = run(capsys, "assign", "bob", "Beta")
    assert out == "bob is in Beta (moved from Alpha)\n"

    code, out, err = run(capsys, "create-api-key", "--call-center", "Beta", "--name", "CRM")
    key = out.strip()
    assert code == 0 and key.startswith("cti_") and "shown once" in err

    code, out, _ = run(capsys, "who")
    assert out.splitlines() == [f"{'-':<24} {'admin':<11} root", f"{'Beta':<24} {'agent':<11} bob"]

    async def check() -> None:
        store = Store(StoreConfig(url=store_url))
        try:
            async with store.session() as db:
                row = await api_key_for(db, key)
                assert row is not None and row.name == "CRM"
                actions = (await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
            assert actions == ["user.create", "call_center.create", "call_center.create", "user.create",
                               "membership.assign", "membership.assign", "api_key.create"]
        finally:
            await store.close()

    asyncio.run(check())


def test_admin_command_errors_name_the_problem(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "migrate")
    code, _, err = run(capsys, "create-admin", "root", "--password-stdin", stdin="short\n")
    assert code == 1 and "password: must be at least 8 characters" in err
    code, _, err = run(capsys, "create-call-center", "X", "--region", "XX")
    assert code == 1 and "phone_region" in err
    code, _, err = run(capsys, "assign", "nobody", "X")
    assert code == 1 and "no user 'nobody'" in err
    code, _, err = run(capsys, "create-api-key", "--call-center", "Nowhere")
    assert code == 1 and "no call center 'Nowhere'" in err


def test_unreachable_store_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CTI_STORE__URL", "postgresql://postgres@127.0.0.1:1/none")
    code, _, err = run(capsys, "migrate")
    assert code == 1 and "cannot use the store at postgresql+asyncpg://postgres@127.0.0.1:1/none" in err
