"""The OpenAPI description is true to the server: schemathesis, as an attacker
would use it, against `aiprod serve` over real HTTP.

Checks: no 5xx, only documented status codes and content types, responses in
their schemas, a 405's Allow header, schema-valid requests accepted and
schema-violating ones refused.  The few rules a JSON schema cannot state
(cross-field rules, a cursor the server must have issued) are listed with
their reasons in ``schemathesis.toml`` beside this file; nothing else may
fail.  The seed is fixed so a failure replays (`st replay <id>` prints it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_http import Server, create_user, free_port

HERE = Path(__file__).parent
RATE_CLASSES = ("auth", "writes", "reads", "exports", "streams")
EMAIL = "fuzz-admin@example.com"
PASSWORD = "a long enough fuzzing password"
# Operations that end the caller's own credentials would turn the rest of the
# run into 401s: they have their own tests (tests/identity).
OWN_CREDENTIALS = r"/v1/auth/(logout|revoke|password)|/sessions|/revoke-all"


def _st() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("schemathesis is not installed (it is a dev dependency)")
        pytest.skip("schemathesis is not installed")
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {
        **os.environ,
        "AIPROD_DATA_DIR": str(tmp_path / "data"),
        "AIPROD_PORT": str(free_port()),
        "AIPROD_WORKERS": "0",
        # The fuzzer logs in with wrong passwords on purpose.
        "AIPROD_LOGIN_ACCOUNT_FREE_FAILURES": "100",
        "AIPROD_LOGIN_ADDRESS_FREE_FAILURES": "10000",
        # ...and sends thousands of requests from one address: rate limits on
        # (their headers and the documented 429 are checked) but far above it.
        "AIPROD_RATE_LIMITS": json.dumps(dict.fromkeys(RATE_CLASSES, "1000000/minute")),
    }
    create_user(env, EMAIL, PASSWORD, "--role", "admin")
    srv = Server(env, tmp_path / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_the_server_keeps_every_promise_of_its_openapi(server: Server, tmp_path: Path) -> None:
    st = _st()
    r = httpx.post(f"{server.base}/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    run = subprocess.run(
        [
            st,
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{server.base}/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--exclude-checks",
            "use_after_free,ensure_resource_availability",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--workers",
            "1",
            "--exclude-path-regex",
            OWN_CREDENTIALS,
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache and reports stay out of the checkout
    )
    report = run.stdout
    # Only the credential endpoints may see nothing but 401s (the fuzzer's
    # passwords are wrong); anything else means the run lost its token.
    credential_routes = {"POST /v1/auth/login", "POST /v1/auth/refresh"}
    credential_routes |= {"POST /v1/auth/session", "POST /v1/auth/session/refresh"}
    assert _only_401(report) <= credential_routes, report[-12000:]
    assert run.returncode == 0, report[-12000:] + server.output()


def _only_401(report: str) -> set[str]:
    """Operations schemathesis saw answer nothing but 401/403."""
    found: set[str] = set()
    lines = iter(report.splitlines())
    for line in lines:
        if line.startswith(("401 Unauthorized (", "403 Forbidden (")):
            for item in lines:
                if not item.strip().startswith("- "):
                    break
                found.add(item.strip().removeprefix("- "))
    return found
