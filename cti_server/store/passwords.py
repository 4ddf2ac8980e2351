"""Password hashing: argon2id for web logins (RFC 9106), and SIP digest HA1 values (RFC 8760 section 3).

argon2id is memory-hard on purpose, so hashing and verifying run in a worker thread and never stall the
event loop that carries calls.
"""

from __future__ import annotations

import asyncio
import hashlib

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from cti_server.config import AuthConfig

SIP_DIGEST_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class PasswordHashing:
    """argon2id with the cost from ``[auth]``; ``hash`` and ``verify`` are awaited off the loop.

    One lane (p=1): the hash already runs in a worker thread, and more lanes than the shared cores
    would only add threads; memory and passes carry the cost.
    """

    def __init__(self, config: AuthConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.password_time_cost,
            memory_cost=config.password_memory_kib,
            parallelism=1,
            type=Type.ID,
        )
        # Verified against when the username is unknown, so a miss costs as long as a wrong password.
        self._dummy_hash = ""

    async def hash(self, password: str) -> str:
        """The PHC-format argon2id hash of ``password`` (salted)."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing hash still spends the same time and returns False."""
        if password_hash is None:
            if not self._dummy_hash:
                self._dummy_hash = await self.hash("not a password of anyone")
            await asyncio.to_thread(self._check, self._dummy_hash, password)
            return False
        return await asyncio.to_thread(self._check, password_hash, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def sip_ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """RFC 8760 section 3 / RFC 7616 section 3.4.2: hex ``H(username:realm:password)`` for ``algorithm``."""
    return SIP_DIGEST_ALGORITHMS[algorithm](f"{username}:{realm}:{password}".encode()).hexdigest()
