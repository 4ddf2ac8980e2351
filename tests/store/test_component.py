"""StoreComponent: migrates SQLite at start, imports sip.users, serves the registrar's HA1 lookup."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from cti_server.store import Store, StoreComponent
from cti_server.store.credentials import sip_credentials_lookup
from cti_server.store.models import AuditEntry, User
from tests.conftest import make_config


def _ha1(hash_name: str, text: str) -> str:
    return hashlib.new(hash_name, text.encode()).hexdigest()


async def test_start_migrates_a_new_sqlite_file_and_imports_sip_users(tmp_path: Path) -> None:
    config = make_config(
        store={"url": f"sqlite+aiosqlite:///{tmp_path}/sub/dir/store.db"},
        sip={
            "realm": "pbx.test",
            "users": [
                {"username": "1001", "password": "secret1001"},
                {"username": "1002", "ha1_md5": "0" * 32},
            ],
        },
    )
    store = Store(config.store)
    component = StoreComponent(store, config)
    await component.start()
    try:
        assert (tmp_path / "sub/dir/store.db").exists()
        lookup = sip_credentials_lookup(store, "pbx.test")
        assert await lookup("1001") == (
            _ha1("md5", "1001:pbx.test:secret1001"),
            _ha1("sha256", "1001:pbx.test:secret1001"),
        )
        assert await lookup("1002") == ("0" * 32, "")
        assert await lookup("1003") is None
        # Another realm's hashes cannot answer this realm's challenges.
        assert await sip_credentials_lookup(store, "other.realm")("1001") is None
        async with store.session() as db:
            users = (await db.scalars(select(User).order_by(User.username))).all()
            assert [(u.username, u.role, u.password_hash) for u in users] == [
                ("1001", "agent", None),
                ("1002", "agent", None),
            ]
            imported = (await db.scalars(select(AuditEntry.action))).all()
            assert imported == ["user.sip_import", "user.sip_import"]
    finally:
        await component.stop()

    # A restart with the same configuration changes nothing; a new password is picked up.
    again = make_config(
        store={"url": f"sqlite+aiosqlite:///{tmp_path}/sub/dir/store.db"},
        sip={"realm": "pbx.test", "users": [{"username": "1001", "password": "new-secret"}]},
    )
    store = Store(again.store)
    component = StoreComponent(store, again)
    await component.start()
    try:
        lookup = sip_credentials_lookup(store, "pbx.test")
        ha1_md5, _ = await lookup("1001") or ("", "")
        assert ha1_md5 == _ha1("md5", "1001:pbx.test:new-secret")
        async with store.session() as db:
            assert len((await db.scalars(select(AuditEntry))).all()) == 3
    finally:
        await component.stop()
