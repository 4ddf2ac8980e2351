"""``cti-server admin ...``: set up the store from the command line.

``migrate`` brings the store schema to the newest revision; ``create-admin``, ``create-call-center``,
``create-user`` and ``assign`` manage the directory (audited as the command line); ``create-api-key
--call-center NAME`` prints an integrator key once; ``who`` lists users and where they are. Other areas
add admin commands through a ``register_admin(admin_subparsers)`` function in ``cti_server.screenpop.cli``.
Passwords are read from a prompt, or from standard input with ``--password-stdin``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from cti_server.config import Config, load_config
from cti_server.logs import configure_logging
from cti_server.store import CLI_ACTOR, Store, directory
from cti_server.store.credentials import create_api_key
from cti_server.store.errors import StoreError
from cti_server.store.migrate import SchemaOutOfDate, current_revision, upgrade
from cti_server.store.models import CallCenter, Membership, User
from cti_server.store.passwords import PasswordHashing

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
EXTRA_ADMIN_MODULES = ("cti_server.screenpop.cli",)
"""Modules whose ``register_admin(admin_subparsers)`` adds more ``cti-server admin`` commands."""

Command = Callable[[argparse.Namespace, Config, Store], Awaitable[int]]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _read_password(args: argparse.Namespace, prompt: str = "Password: ") -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise StoreError("password: the two entries differ")
    return first


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """Wrap an async command: load the config, open the store, run, close; StoreError -> exit 1."""

    def run(args: argparse.Namespace) -> int:
        config = load_config(args.config)
        configure_logging(config.log)

        async def main() -> int:
            store = Store(config.store)
            try:
                if args.admin_command != "migrate":
                    await store.open()
                return await command(args, config, store)
            finally:
                await store.close()

        try:
            return asyncio.run(main())
        except (StoreError, SchemaOutOfDate) as exc:
            _err(f"cti-server admin {args.admin_command}: {exc}")
            return 1
        except (DBAPIError, OSError) as exc:
            where = Store(config.store).url.render_as_string(hide_password=True)
            _err(f"cti-server admin {args.admin_command}: cannot use the store at {where}: {exc}")
            return 1

    return run


async def _migrate(args: argparse.Namespace, config: Config, store: Store) -> int:
    store.ensure_directory()
    before = await current_revision(store.engine)
    after = await upgrade(store.engine)
    where = store.url.render_as_string(hide_password=True)
    _out(f"store {where}: revision {before or '(empty)'} -> {after}" if before != after
         else f"store {where}: already at revision {after}")
    return 0


async def _create_user(args: argparse.Namespace, config: Config, store: Store, role: str) -> int:
    password = directory.check_password("password", _read_password(args))
    password_hash = await PasswordHashing(config.auth).hash(password)
    async with store.session() as db:
        call_center = None
        if getattr(args, "call_center", None):
            call_center = await directory.get_call_center(db, args.call_center)
        user = await directory.create_user(db, CLI_ACTOR, args.username, role, password_hash,
                                           display_name=args.display_name or "", email=args.email or "")
        if call_center is not None:
            await directory.assign(db, CLI_ACTOR, user, call_center)
    where = f" in {call_center.name}" if call_center is not None else ""
    _out(f"created {role} {user.username} ({user.id}){where}")
    return 0


async def _create_admin(args: argparse.Namespace, config: Config, store: Store) -> int:
    return await _create_user(args, config, store, "admin")


async def _create_user_command(args: argparse.Namespace, config: Config, store: Store) -> int:
    return await _create_user(args, config, store, directory.check_role(args.role))


async def _create_call_center(args: argparse.Namespace, config: Config, store: Store) -> int:
    async with store.session() as db:
        call_center = await directory.create_call_center(
            db, CLI_ACTOR, args.name, args.region, args.recording
        )
    _out(f"created call center {call_center.name} ({call_center.id}), region {call_center.phone_region}")
    return 0


async def _assign(args: argparse.Namespace, config: Config, store: Store) -> int:
    async with store.session() as db:
        user = await directory.get_user(db, args.username)
        call_center = await directory.get_call_center(db, args.call_center)
        previous = await directory.assign(db, CLI_ACTOR, user, call_center)
        previous_name = (await directory.get_call_center(db, previous)).name if previous else None
    moved = f" (moved from {previous_name})" if previous_name and previous_name != call_center.name else ""
    _out(f"{user.username} is in {call_center.name}{moved}")
    return 0


async def _create_api_key(args: argparse.Namespace, config: Config, store: Store) -> int:
    async with store.session() as db:
        call_center = await directory.get_call_center(db, args.call_center)
        row, key = await create_api_key(db, CLI_ACTOR, call_center.id, args.name or "")
    _err(f"API key {row.prefix} for {call_center.name}: shown once, store it now.")
    _out(key)
    return 0


async def _who(args: argparse.Namespace, config: Config, store: Store) -> int:
    async with store.session() as db:
        rows = (await db.execute(
            select(User.username, User.role, CallCenter.name)
            .outerjoin(Membership, Membership.user_id == User.id)
            .outerjoin(CallCenter, CallCenter.id == Membership.call_center_id)
            .order_by(CallCenter.name, User.username)
        )).all()
    for username, role, call_center in rows:
        _out(f"{call_center or '-':<24} {role:<11} {username}")
    return 0


def _parser(subparsers: Subparsers, name: str, help_text: str, command: Command) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--config", type=Path, default=None, help="TOML file (default config/cti-server.toml)")
    p.set_defaults(func=_runner(command))
    return p


def _user_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("username")
    p.add_argument("--display-name", default="")
    p.add_argument("--email", default="")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")


def register(subparsers: Subparsers) -> None:
    """Add ``cti-server admin`` and its commands."""
    admin = subparsers.add_parser("admin", help="manage the store: migrate, call centers, users, API keys")
    commands = admin.add_subparsers(dest="admin_command", required=True)
    _parser(commands, "migrate", "bring the store schema to the newest revision", _migrate)
    _user_arguments(_parser(commands, "create-admin", "create an admin user", _create_admin))
    p = _parser(commands, "create-call-center", "create a call center", _create_call_center)
    p.add_argument("name")
    p.add_argument("--region", default="US", help="default phone region, ISO 3166 (US, GB, DE...)")
    p.add_argument("--recording", default="none",
                   help="recording policy: none, all, inbound, outbound, on_demand")
    p = _parser(commands, "create-user", "create a user, optionally in a call center", _create_user_command)
    _user_arguments(p)
    p.add_argument("--role", required=True, help="supervisor, agent, integrator or admin")
    p.add_argument("--call-center", help="name or id of the call center to put the user in")
    p = _parser(commands, "assign", "put a user in a call center (moving them out of any other)", _assign)
    p.add_argument("username")
    p.add_argument("call_center", help="name or id")
    p = _parser(commands, "create-api-key", "create an integrator API key and print it once", _create_api_key)
    p.add_argument("--call-center", required=True, help="name or id")
    p.add_argument("--name", default="", help="a label, e.g. the integration's name")
    _parser(commands, "who", "list users and the call center each is in", _who)
    for module_name in EXTRA_ADMIN_MODULES:
        _register_extra(module_name, commands)


def _register_extra(module_name: str, commands: Subparsers) -> None:
    try:
        module: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    module.register_admin(commands)
