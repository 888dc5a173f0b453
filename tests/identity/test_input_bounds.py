"""Every number the identity routes take is bounded in the schema: an out-of-range,
infinite or not-a-number value answers 422 in the error shape, never 500 (the
audit found `max_age_days: 1e308` / `Infinity` on key rotation and a 20-digit
`before` on the audit log answering 500).  The OpenAPI document states the
bounds, so a schema-valid request is not refused either."""

from __future__ import annotations

from typing import Any

import pytest

from tests.identity.conftest import Api, make_key

_HUGE = "1" + "0" * 19  # 20 digits: beyond a 64-bit integer
_BAD_DAYS = ["1e308", "Infinity", "-Infinity", "NaN", "1e9", "3651", "0", "-1"]


def _assert_422(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert any(d["loc"][-1] == field for d in error["details"]), error


async def _post_raw(api: Api, url: str, body: str, headers: dict[str, str]) -> Any:
    """JSON as a client may write it: Python's parser takes `Infinity` and `NaN`."""
    return await api.client.post(
        url, content=body, headers={**headers, "Content-Type": "application/json"}
    )


@pytest.mark.parametrize("value", _BAD_DAYS)
async def test_rotate_due_refuses_unbounded_max_age(api: Api, value: str) -> None:
    _, headers = await api.account("admin")
    r = await _post_raw(api, "/v1/admin/keys/rotate", f'{{"max_age_days": {value}}}', headers)
    _assert_422(r, "max_age_days")


async def test_rotate_due_still_takes_sane_ages(api: Api) -> None:
    _, headers = await api.account("admin")
    for body in ('{"max_age_days": 3650}', '{"max_age_days": 0.5}', "{}"):
        r = await _post_raw(api, "/v1/admin/keys/rotate", body, headers)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"rotated": []}


@pytest.mark.parametrize("value", ["1e308", "Infinity", "NaN", "-1", "2592001"])
async def test_key_rotation_refuses_unbounded_grace(api: Api, value: str) -> None:
    _, headers = await api.account()
    key, _ = await make_key(api, headers)
    url = f"/v1/api-keys/{key['id']}/rotate"
    r = await _post_raw(api, url, f'{{"grace_seconds": {value}}}', headers)
    _assert_422(r, "grace_seconds")


@pytest.mark.parametrize("value", [_HUGE, "1e308", "Infinity", "NaN", "0", "366"])
async def test_key_creation_refuses_unbounded_lifetime(api: Api, value: str) -> None:
    _, headers = await api.account()
    body = f'{{"name": "k", "expires_in_days": {value}}}'
    r = await _post_raw(api, "/v1/api-keys", body, headers)
    _assert_422(r, "expires_in_days")


@pytest.mark.parametrize("value", [_HUGE, str(2**63), "-1", "0", "1e3", "NaN"])
async def test_audit_before_refuses_what_the_database_cannot_hold(api: Api, value: str) -> None:
    _, headers = await api.account("admin")
    r = await api.client.get("/v1/admin/audit", params={"before": value}, headers=headers)
    _assert_422(r, "before")


async def test_audit_before_takes_the_largest_64_bit_id(api: Api) -> None:
    _, headers = await api.account("admin")
    r = await api.client.get("/v1/admin/audit", params={"before": 2**63 - 1}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["items"]  # the admin's own login is older than any id


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("until", "9999-12-31T23:59:59-12:00"),  # beyond year 9999 once in UTC
        ("since", "0001-01-01T00:00:00+12:00"),  # before year 1 once in UTC
    ],
)
async def test_audit_times_refuse_what_utc_cannot_hold(api: Api, param: str, value: str) -> None:
    _, headers = await api.account("admin")
    r = await api.client.get("/v1/admin/audit", params={param: value}, headers=headers)
    _assert_422(r, param)


@pytest.mark.parametrize(
    ("url", "param", "value"),
    [
        ("/v1/admin/audit", "limit", _HUGE),
        ("/v1/admin/audit", "limit", "0"),
        ("/v1/admin/users", "limit", _HUGE),
        ("/v1/admin/users", "limit", "501"),
    ],
)
async def test_page_sizes_are_bounded(api: Api, url: str, param: str, value: str) -> None:
    _, headers = await api.account("admin")
    r = await api.client.get(url, params={param: value}, headers=headers)
    _assert_422(r, param)


async def test_openapi_states_the_bounds(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def number(schema: dict[str, Any]) -> dict[str, Any]:
        found = [s for s in schema.get("anyOf", [schema]) if s.get("type") in ("number", "integer")]
        assert found, schema
        return found[0]

    max_age = number(schemas["RotateDue"]["properties"]["max_age_days"])
    assert max_age["exclusiveMinimum"] == 0 and max_age["maximum"] == 3650
    grace = number(schemas["ApiKeyRotate"]["properties"]["grace_seconds"])
    assert grace["minimum"] == 0 and grace["maximum"] == 30 * 86400
    lifetime = number(schemas["ApiKeyCreate"]["properties"]["expires_in_days"])
    assert lifetime["minimum"] == 1 and lifetime["maximum"] == 365
    params = {p["name"]: p for p in doc["paths"]["/v1/admin/audit"]["get"]["parameters"]}
    before = number(params["before"]["schema"])
    assert before["minimum"] == 1 and before["maximum"] == 2**63 - 1


@pytest.mark.parametrize("value", ["1e308", "inf", "nan", "3651", "-1"])
def test_cli_rotate_due_refuses_unbounded_max_age(
    value: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`aiprod keys rotate-due` takes the same bounds, refused before any database work."""
    from typer.testing import CliRunner

    from aiprod.cli import app

    monkeypatch.setenv("AIPROD_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["keys", "rotate-due", "--max-age-days", value])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not any(tmp_path.iterdir()), "refused only after touching the data folder"
