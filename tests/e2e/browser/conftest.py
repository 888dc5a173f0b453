"""Fixtures of the browser suite: one `aiprod serve` (embedded worker, SQLite
in a temporary data folder) and one headless Debian Chromium for the module,
and a fresh browser context per page a test opens, watched for console
errors, uncaught exceptions and CSP violations (any of them fails the test
when it ends)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.browser.harness import (
    ADMIN_EMAIL,
    PASSWORD,
    PRODUCER_EMAIL,
    REVIEW,
    VIEWER_EMAIL,
    Studio,
    Tabs,
    chromium_or_skip,
    one_time_password,
    request_body,
    wait_status,
)
from tests.e2e.test_http import Server, create_user, free_port


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """`aiprod serve` with its first admin (the one-time password it prints),
    a producer (role user) and a future viewer (role user until
    `viewer_productions` has made its productions)."""
    root = tmp_path_factory.mktemp("studio")
    env = {
        **os.environ,
        "AIPROD_DATA_DIR": str(root / "data"),
        "AIPROD_PORT": str(free_port()),
        "AIPROD_WORKERS": "1",
        "AIPROD_LEASE_SECONDS": "5",
        "AIPROD_HEARTBEAT_SECONDS": "0.5",
        "AIPROD_POLL_SECONDS": "0.2",
    }
    env.pop("AIPROD_DATABASE_URL", None)  # SQLite in the data folder
    server = Server(env, root / "server.log")
    server.start()  # migrates the database: the two CLI calls can run at once
    try:
        with ThreadPoolExecutor(2) as pool:
            made = [
                pool.submit(create_user, env, email, PASSWORD, "--role", "user")
                for email in (PRODUCER_EMAIL, VIEWER_EMAIL)
            ]
            for future in made:
                future.result()
        yield Studio(server, one_time_password(server), root / "data")
    finally:
        server.stop()


# `make test` renders in three workers at once on two cores: a page may take
# a while to show what the server did.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def chromium(studio: Studio) -> Iterator[Browser]:
    path = chromium_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(path), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tabs(chromium: Browser, studio: Studio) -> Iterator[Tabs]:
    opened = Tabs(chromium, studio)
    yield opened
    problems = opened.close()
    assert not problems, "the pages reported:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def finished(studio: Studio) -> str:
    """The admin's completed production, for the checks that only look at one."""
    with studio.bearer(ADMIN_EMAIL) as client:
        r = client.post("/v1/productions", json=request_body(title="Honeybees at dawn"))
        assert r.status_code == 202, r.text
        job_id = str(r.json()["job"]["id"])
        job = wait_status(client, job_id, {"completed", "failed"})
        assert job["status"] == "completed", job
    return job_id


@pytest.fixture(scope="module")
def viewer_productions(studio: Studio) -> dict[str, str]:
    """A viewer's own productions (one completed, one awaiting approval): made
    while the account still had the role `user`, then an admin makes it a
    viewer through the admin API (a viewer cannot create any)."""
    made: dict[str, str] = {}
    with studio.bearer(VIEWER_EMAIL) as client:
        me = client.get("/v1/me").json()
        for name, extra in (
            ("completed", {"title": "Viewer's finished film"}),
            ("awaiting_approval", {"title": "Viewer's storyboard", **REVIEW}),
        ):
            r = client.post("/v1/productions", json=request_body(**extra))
            assert r.status_code == 202, r.text
            made[name] = str(r.json()["job"]["id"])
        for status, job_id in made.items():
            job = wait_status(client, job_id, {status, "failed"})
            assert job["status"] == status, job
    with studio.bearer(ADMIN_EMAIL) as admin:
        r = admin.patch(f"/v1/admin/users/{uuid.UUID(me['id'])}", json={"role": "viewer"})
        assert r.status_code == 200 and r.json()["role"] == "viewer", r.text
    return made
