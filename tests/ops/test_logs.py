"""Structured logs in the app's own process: JSON lines that carry the request
id the client got back (and the user, the route), a worker's lines for a job
carrying the id of the request that submitted it, and no secret in any line
(sign-in, refresh, an API key, a webhook's secret, the scrape token)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

import pytest
from fastapi import Request
from sqlalchemy import update

from aiprod.identity.deps import AnyPrincipal
from aiprod.jobs.models import Job
from aiprod.jobs.worker import Worker
from aiprod.ops import logs
from tests.api.conftest import PASSWORD, Api
from tests.ops.conftest import SCRAPE_TOKEN, LogLines


async def test_each_request_writes_one_access_line_with_its_id(
    api: Api, log_lines: LogLines
) -> None:
    user, headers = await api.account()
    job = await api.submit(headers)
    r = await api.client.get(f"/v1/productions/{job['id']}?cursor=abc", headers=headers)
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    [line] = log_lines.where(logger="aiprod.access", request_id=rid)
    assert line["message"] == "GET /v1/productions/{production_id} 200"
    assert line["route"] == "/v1/productions/{production_id}"
    assert line["path"] == f"/v1/productions/{job['id']}"  # never the query string
    assert line["method"] == "GET" and line["status"] == 200 and line["level"] == "info"
    assert line["user_id"] == str(user.id)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["ts"].endswith("Z")


async def test_a_client_chosen_request_id_is_kept(api: Api, log_lines: LogLines) -> None:
    r = await api.client.get("/health/live", headers={"X-Request-ID": "lb-1234.abc"})
    assert r.headers["x-request-id"] == "lb-1234.abc"
    [line] = log_lines.where(logger="aiprod.access", request_id="lb-1234.abc")
    assert "user_id" not in line  # nobody signed in


async def test_lines_written_inside_a_request_carry_its_context(
    api: Api, log_lines: LogLines
) -> None:
    async def probe(request: Request, who: AnyPrincipal) -> dict[str, str]:
        logging.getLogger("aiprod.probe").warning("inside the handler")
        return {}

    api.app.add_api_route("/v1/probe/{thing}", probe, methods=["GET"])
    user, headers = await api.account()
    r = await api.client.get("/v1/probe/42", headers=headers)
    assert r.status_code == 200, r.text
    [line] = log_lines.where(logger="aiprod.probe")
    assert line["request_id"] == r.headers["x-request-id"]
    assert line["user_id"] == str(user.id)
    assert line["route"] == "/v1/probe/{thing}"
    assert line["level"] == "warning" and line["message"] == "inside the handler"


async def test_the_worker_lines_of_a_job_carry_the_submitting_request_id(
    api: Api, log_lines: LogLines
) -> None:
    user, headers = await api.account()
    r = await api.client.post(
        "/v1/productions", json={"prompt": "How honeybees make honey"}, headers=headers
    )
    assert r.status_code == 202, r.text
    rid = r.headers["x-request-id"]
    job_id = r.json()["job"]["id"]
    assert (await api.jobs.get(uuid.UUID(job_id), None)).request_id == rid

    # A worker takes it; the job was cancelled meanwhile, so the worker's whole
    # visit (claim, start, cancellation) is quick and renders nothing.
    worker = Worker(api.db, api.storage, api.settings)
    job = await api.jobs.claim(worker.worker_id)
    assert job is not None and str(job.id) == job_id
    async with api.db.transaction() as s:
        await s.execute(update(Job).where(Job.id == job.id).values(cancel_requested=True))
    job.cancel_requested = True
    await worker.process(job)
    assert (await api.jobs.get(job.id, None)).status == "cancelled"

    ours = log_lines.where(logger="aiprod.worker", job_id=job_id)
    assert len(ours) >= 2, log_lines.text  # "job … (attempt 1)" and its cancellation
    assert all(line["request_id"] == rid for line in ours)
    assert all(line["user_id"] == str(user.id) for line in ours)
    assert any("cancelled" in line["message"] for line in ours)
    # Outside the job, no job context lingers.
    logging.getLogger("aiprod.worker").info("after")
    assert "job_id" not in log_lines.where(message="after")[0]


async def test_no_secret_reaches_a_log_line(api: Api, log_lines: LogLines) -> None:
    secrets: list[str] = [PASSWORD, SCRAPE_TOKEN]
    user, _ = await api.account("admin")
    r = await api.client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    tokens = r.json()
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    secrets += [r.json()["access_token"], r.json()["refresh_token"]]
    r = await api.client.post("/v1/api-keys", json={"name": "ci"}, headers=headers)
    key = r.json()["secret"]
    secrets.append(key)
    key_headers = {"Authorization": f"Bearer {key}"}
    assert (await api.client.get("/v1/productions", headers=key_headers)).status_code == 200
    r = await api.client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/aiprod", "event_types": ["*"]},
        headers=headers,
    )
    if r.status_code == 201:  # creating one resolves the host: may fail offline
        secrets.append(r.json()["secret"])
    r = await api.client.post(
        "/v1/auth/session",
        json={"email": user.email, "password": PASSWORD},
        headers={"Origin": "http://aiprod.test"},
    )
    secrets += [r.json()["csrf_token"], *api.client.cookies.values()]
    api.client.cookies.clear()
    # Wrong credentials and a failed login are logged too, without the values.
    wrong = "aipk_" + "w" * 40
    secrets.append(wrong)
    await api.client.get("/v1/me", headers={"Authorization": f"Bearer {wrong}"})
    await api.client.post("/v1/auth/login", json={"email": user.email, "password": "x" * 20})
    secrets.append("x" * 20)
    await api.client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})

    text = log_lines.text
    assert len(log_lines.where(logger="aiprod.access")) >= 10, text
    leaked = [s for s in secrets if s and s in text]
    assert leaked == [], text


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "eyJzdWIiOi"),
        ("got key aipk_0123456789abcdef_XYZ", "0123456789abcdef"),
        ("refresh rt_AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
        ("secret is whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("GET /cb?access_token=s3cr3tvalue&x=1", "s3cr3tvalue"),
        ("ticket wst_abcdefghijkl", "abcdefghijkl"),
    ],
)
def test_redact_masks_what_looks_like_a_credential(message: str, secret: str) -> None:
    assert secret not in logs.redact(message)
    assert logs.REDACTED in logs.redact(message)


def test_ordinary_words_are_left_alone() -> None:
    text = "token expired for user 42; password reset requested; start_time=3"
    assert logs.redact(text) == text


def _record(message: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("aiprod.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_fields_and_mask_secrets_in_them() -> None:
    line = json.loads(
        logs.JsonFormatter().format(_record("hello", status=201, note="rt_abcdefghij"))
    )
    assert line["message"] == "hello" and line["level"] == "warning"
    assert line["logger"] == "aiprod.test" and line["status"] == 201
    assert line["note"] == logs.REDACTED
    try:
        raise RuntimeError("bad Bearer abc.def.ghi")
    except RuntimeError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = json.loads(logs.JsonFormatter().format(record))
    assert "RuntimeError" in line["exception"] and "abc.def.ghi" not in line["exception"]


def test_console_lines_are_for_people() -> None:
    text = logs.ConsoleFormatter().format(_record("hello", status=201))
    assert "WARNING" in text and "aiprod.test: hello" in text and "status=201" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_console_at_a_terminal_and_json_elsewhere() -> None:
    assert logs.resolve("auto", _Terminal()) == "console"
    assert logs.resolve("auto", io.StringIO()) == "json"
    assert logs.resolve("console", io.StringIO()) == "console"
    assert logs.resolve("json", _Terminal()) == "json"


def test_configure_routes_every_logger_and_silences_uvicorn_access() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access")
    saved_access = access.disabled, access.propagate
    stream = io.StringIO()
    try:
        assert logs.configure("auto", "info", stream) == "json"
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("uvicorn.access").info("GET / 200")
        logging.getLogger("httpx").info("HTTP Request: POST https://hooks.example.com/T0/secret")
        lines = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert [x["logger"] for x in lines] == ["uvicorn.error"]
        with pytest.raises(ValueError, match="unknown log level"):
            logs.configure("json", "loud", stream)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        access.disabled, access.propagate = saved_access
        for name in logs.QUIET:
            logging.getLogger(name).setLevel(logging.NOTSET)
