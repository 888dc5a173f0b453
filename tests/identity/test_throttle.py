"""Brute force: per-account and per-address throttling with exponential delay,
lockouts in the audit log, and equal work for unknown users and wrong passwords.

No timing is measured: equal work is shown by counting Argon2 verifications
and database effects on each path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from aiprod.identity import passwords
from aiprod.identity.models import LoginThrottle, User
from aiprod.identity.throttle import Throttle, throttle_key
from aiprod.settings import Settings
from tests.identity.conftest import PASSWORD, Api, audit, running


@pytest.fixture
async def tapi(api_settings: Settings) -> AsyncIterator[Api]:
    settings = api_settings.model_copy(
        update={"login_account_free_failures": 3, "login_address_free_failures": 6}
    )
    async with running(settings) as a:
        yield a


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2 verification the server runs (the hash it checked against)."""
    calls: list[str] = []
    hasher = passwords._hasher.hashers[0]
    real = hasher.verify

    def counting(password: str | bytes, hash: str | bytes) -> bool:
        calls.append(str(hash))
        return real(password, hash)

    monkeypatch.setattr(hasher, "verify", counting)
    return calls


async def _login(api: Api, email: str, password: str, client: Any = None) -> httpx.Response:
    c = client or api.client
    r: httpx.Response = await c.post("/v1/auth/login", json={"email": email, "password": password})
    return r


def test_delay_doubles_and_is_capped(settings: Settings) -> None:
    t = Throttle(None, settings)  # type: ignore[arg-type]
    free = 5
    assert [t.delay(n, free) for n in range(1, 5)] == [0, 0, 0, 0]
    assert [t.delay(n, free) for n in range(5, 10)] == [1, 2, 4, 8, 16]
    assert t.delay(40, free) == settings.login_delay_max_seconds == 900


async def test_account_locks_after_failures_even_for_the_right_password(
    tapi: Api, verifications: list[str]
) -> None:
    user = await tapi.user()
    for _ in range(2):
        assert (await _login(tapi, user.email, "wrong password")).status_code == 401
    third = await _login(tapi, user.email, "wrong password")
    assert third.status_code == 401  # the failure that starts the lock still answers 401
    verifications.clear()
    locked = await _login(tapi, user.email, PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(locked.headers["retry-after"]) <= 1
    assert verifications == []  # refused before any password check
    [lock] = await audit(tapi, "login.locked")
    assert lock.details == {"lock": "account", "failures": 3, "seconds": 1}
    assert lock.actor_id == user.id and lock.outcome == "denied"
    assert [e.outcome for e in await audit(tapi, "login.throttled")] == ["denied"]


async def test_lock_grows_exponentially_then_success_clears_it(tapi: Api) -> None:
    user = await tapi.user()
    key = throttle_key("account", user.email)

    async def expire_lock() -> None:
        async with tapi.db.transaction() as s:
            await s.execute(
                update(LoginThrottle)
                .where(LoginThrottle.key == key, LoginThrottle.locked_until.is_not(None))
                .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
            )

    lengths = []
    for _ in range(5):
        r = await _login(tapi, user.email, "wrong password")
        assert r.status_code == 401
        async with tapi.db.session() as s:
            row = await s.get(LoginThrottle, key)
        if row is not None and row.locked_until is not None:
            lengths.append(round((row.locked_until - row.last_failure_at).total_seconds()))
        await expire_lock()
    assert lengths == [1, 2, 4]  # failures 3, 4, 5 (3 are free)
    assert (await _login(tapi, user.email, PASSWORD)).status_code == 200
    async with tapi.db.session() as s:
        assert await s.get(LoginThrottle, key) is None


async def test_failures_are_forgotten_after_the_window(tapi: Api) -> None:
    user = await tapi.user()
    for _ in range(2):
        await _login(tapi, user.email, "wrong password")
    async with tapi.db.transaction() as s:
        await s.execute(
            update(LoginThrottle).values(last_failure_at=datetime.now(UTC) - timedelta(hours=1))
        )
    await _login(tapi, user.email, "wrong password")  # counts as the first again
    assert (await _login(tapi, user.email, PASSWORD)).status_code == 200


async def test_client_address_is_throttled_across_accounts(tapi: Api) -> None:
    transport = httpx.ASGITransport(app=tapi.app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://aiprod.test") as attacker:
        for i in range(6):  # one try per account: no account lock, the address adds up
            r = await _login(tapi, f"victim{i}@example.com", "guess", attacker)
            assert r.status_code == 401
        user = await tapi.user()
        r = await _login(tapi, user.email, PASSWORD, attacker)
        assert r.status_code == 429
    # Other addresses are not affected.
    assert (await _login(tapi, user.email, PASSWORD)).status_code == 200
    locks = await audit(tapi, "login.locked")
    assert [(e.details["lock"], e.ip) for e in locks] == [("address", "203.0.113.7")]


async def test_unknown_user_and_wrong_password_do_the_same_work(
    tapi: Api, verifications: list[str]
) -> None:
    user = await tapi.user()
    disabled = await tapi.user()
    async with tapi.db.transaction() as s:
        await s.execute(update(User).where(User.id == disabled.id).values(is_active=False))

    answers = {}
    for name, email in (
        ("wrong_password", user.email),
        ("unknown_user", "nobody@example.com"),
        ("disabled", disabled.email),
    ):
        verifications.clear()
        before = len(await audit(tapi))
        r = await _login(tapi, email, "not the password")
        answers[name] = (r.status_code, r.json(), dict(r.headers).get("www-authenticate"))
        # Exactly one Argon2 verification, against a hash of the same kind.
        assert len(verifications) == 1, name
        assert verifications[0].startswith("$argon2id$"), name
        # The same bookkeeping: one failure audited, both throttle keys counted.
        events = (await audit(tapi))[before:]
        assert [e.event for e in events] == ["login.failed"], name
        async with tapi.db.session() as s:
            rows = {
                r.kind: r.failures
                for r in (
                    await s.execute(
                        select(LoginThrottle).where(
                            LoginThrottle.key.in_(
                                [
                                    throttle_key("account", email),
                                    throttle_key("address", "127.0.0.1"),
                                ]
                            )
                        )
                    )
                ).scalars()
            }
        assert rows["account"] == 1, name
    assert answers["wrong_password"] == answers["unknown_user"] == answers["disabled"]
    # Same parameters for the dummy hash as for real ones.
    async with tapi.db.session() as s:
        stored = (await s.execute(select(User.password_hash).where(User.id == user.id))).scalar()
    dummy = passwords._dummy()
    assert stored is not None
    assert stored.rsplit("$", 2)[0] == dummy.rsplit("$", 2)[0]


async def test_unknown_accounts_lock_like_real_ones(api_settings: Settings) -> None:
    """Lockouts must not reveal which accounts exist.  (A lock of a minute, not
    a second: the fourth attempt must meet the lock however slow the machine.)"""
    settings = api_settings.model_copy(
        update={"login_account_free_failures": 3, "login_delay_base_seconds": 60.0}
    )
    async with running(settings) as tapi:
        user = await tapi.user()
        codes: dict[str, list[int]] = {}
        for email in (user.email, "ghost@example.com"):
            codes[email] = [(await _login(tapi, email, "wrong")).status_code for _ in range(4)]
    assert codes[user.email] == codes["ghost@example.com"] == [401, 401, 401, 429]
