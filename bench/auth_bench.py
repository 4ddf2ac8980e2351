"""Authentication cost: argon2id at the configured cost, and authenticated requests per second.

Phase "argon2": hash and verify one password at the ``[auth]`` defaults (m=64 MiB, t=3) ``--hashes``
times. Phase "http": ``--requests`` requests over real loopback TCP against the full app, ``--workers``
at once, each resolving its credentials in the store: ``GET /api/v1/me`` with an API key and with a
session token, and ``GET /api/v1/users`` as an agent (a scoped query of 50 users among 500).

    .venv/bin/python bench/auth_bench.py --backend sqlite
    .venv/bin/python bench/auth_bench.py --backend postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from cti_server.api import create_app
from cti_server.config import AuthConfig, StoreConfig, config_from_mapping
from cti_server.store import CLI_ACTOR, Store
from cti_server.store.credentials import create_api_key, create_session
from cti_server.store.directory import assign, create_call_center, create_user
from cti_server.store.passwords import PasswordHashing

PG_SERVER = "postgres@127.0.0.1:5432"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def argon2_phase(hashes: int) -> dict[str, float]:
    hashing = PasswordHashing(AuthConfig())
    hash_ms, verify_ms = [], []
    for _ in range(hashes):
        start = time.perf_counter()
        stored = await hashing.hash("correct horse battery staple")
        hash_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        assert await hashing.verify(stored, "correct horse battery staple")
        verify_ms.append((time.perf_counter() - start) * 1000)
    return {"hash_ms_p50": statistics.median(hash_ms), "verify_ms_p50": statistics.median(verify_ms)}


async def populate(store: Store) -> dict[str, str]:
    cheap = PasswordHashing(AuthConfig(password_memory_kib=1024, password_time_cost=1))
    password_hash = await cheap.hash("bench-password")
    async with store.session() as db:
        centers = [await create_call_center(db, CLI_ACTOR, f"Center {i}") for i in range(10)]
        agent = None
        for i in range(500):
            user = await create_user(db, CLI_ACTOR, f"user{i}", "agent", password_hash)
            await assign(db, CLI_ACTOR, user, centers[i % 10])
            agent = agent or user
        assert agent is not None
        _row, key = await create_api_key(db, CLI_ACTOR, centers[0].id, "bench")
        token = await create_session(db, agent, 3600)
    return {"api_key": key, "session": token}


async def http_phase(store: Store, requests: int, workers: int) -> dict[str, Any]:
    credentials = await populate(store)
    config = config_from_mapping({"http": {"port": 0}, "log": {"format": "json", "level": "warning"}})
    server = TestServer(create_app(config, store=store))
    await server.start_server()
    results: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as client:
            for name, path, credential in (("me_api_key", "/api/v1/me", "api_key"),
                                           ("me_session", "/api/v1/me", "session"),
                                           ("users_as_agent", "/api/v1/users", "session")):
                headers = {"Authorization": f"Bearer {credentials[credential]}"}
                latencies: list[float] = []
                remaining = iter(range(requests))

                async def worker() -> None:
                    for _ in remaining:  # noqa: B023 - shared iterator on purpose
                        start = time.perf_counter()
                        async with client.get(path, headers=headers) as response:  # noqa: B023
                            assert response.status == 200, response.status
                            await response.read()
                        latencies.append((time.perf_counter() - start) * 1000)  # noqa: B023

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(workers)))
                elapsed = time.perf_counter() - start
                results[name] = {"requests_per_s": round(requests / elapsed),
                                 "p50_ms": round(percentile(latencies, 0.5), 2),
                                 "p99_ms": round(percentile(latencies, 0.99), 2)}
    finally:
        await server.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--hashes", type=int, default=5)
    args = parser.parse_args()
    report: dict[str, Any] = {"backend": args.backend, "argon2id_default": await argon2_phase(args.hashes)}
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            store = Store(StoreConfig(url=f"sqlite+aiosqlite:///{directory}/bench.db"))
            await store.open()
            try:
                report["http"] = await http_phase(store, args.requests, args.workers)
            finally:
                await store.close()
    else:
        name = f"cti_auth_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            store = Store(StoreConfig(url=f"postgresql+asyncpg://{PG_SERVER}/{name}", pool_size=10))
            await store.open(migrate=True)
            try:
                report["http"] = await http_phase(store, args.requests, args.workers)
            finally:
                await store.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
