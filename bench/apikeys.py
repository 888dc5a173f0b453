"""How long verifying an API key takes, per request.

    .venv/bin/python bench/apikeys.py [--n 2000] [--database-url postgresql+asyncpg://…]

Prints microseconds per call for: the cryptographic part alone (format,
checksum, HMAC-SHA256), the whole `principal_from_token` on a SQLite
database (crypto + one indexed lookup of the digest joined to the user), and,
for contrast, one Argon2id password verification at production cost.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from aiprod.db.engine import Database
from aiprod.db.migrate import upgrade_async
from aiprod.identity import passwords
from aiprod.identity.api_keys import format as key_format
from aiprod.identity.audit import AuditContext
from aiprod.identity.deps import principal_from_token
from aiprod.identity.service import IdentityService
from aiprod.settings import Settings


def _crypto_only(n: int) -> float:
    secret = b"s" * 48
    key = key_format.generate()
    start = time.perf_counter()
    for _ in range(n):
        assert key_format.well_formed(key)
        key_format.digest(secret, key)
    return (time.perf_counter() - start) / n * 1e6


async def _full(n: int, folder: Path, url: str | None) -> float:
    url = url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    settings = Settings(_env_file=None, data_dir=folder, database_url=url, secret_key="k" * 40)
    await upgrade_async(url)
    db = Database(url)
    try:
        identity = IdentityService(db, settings)
        email = f"bench-{time.time_ns()}@example.com"
        user = await identity.create_user(email, None, "user")
        _, token = await identity.api_keys.create(user, "bench", None, None, AuditContext())
        state = SimpleNamespace(identity=identity)
        for _ in range(50):  # warm the pool and caches
            await principal_from_token(state, token)
        start = time.perf_counter()
        for _ in range(n):
            await principal_from_token(state, token)
        return (time.perf_counter() - start) / n * 1e6
    finally:
        await db.dispose()


def _argon2(n: int) -> float:
    hashed = passwords.hash_password("correct horse battery")
    start = time.perf_counter()
    for _ in range(n):
        passwords.verify_password("correct horse battery", hashed)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    crypto = _crypto_only(args.n * 10)
    with tempfile.TemporaryDirectory() as folder:
        full = asyncio.run(_full(args.n, Path(folder), args.database_url))
    kdf = _argon2(5)
    print(f"API key, format + checksum + HMAC-SHA256: {crypto:8.1f} µs")
    where = "PostgreSQL" if args.database_url else "SQLite"
    print(f"API key, principal_from_token on {where}: {full:8.1f} µs")
    print(f"(for contrast) one Argon2id verify:        {kdf:8.1f} µs")


if __name__ == "__main__":
    main()
