"""Audit findings (issue 9): numeric inputs of the productions API that
answered 500 instead of 4xx, and the bounds the OpenAPI document states.

Each case once reached the database (an integer beyond 64 bits) or Python's
int parser (a `Range` header with thousands of digits) and answered 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

SEQ_MAX = 2**31 - 1  # job_events.seq is a 32-bit integer column


def _validation_error(r: Any, loc: list[str]) -> None:
    assert r.status_code == 422, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert any(d["loc"][: len(loc)] == loc for d in err["details"]), err["details"]


@pytest.mark.parametrize("after", [10**30, 2**63, 2**31, -(10**30)])
async def test_events_after_beyond_the_column_is_422(api: Api, after: int) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    r = await api.client.get(
        f"/v1/productions/{job['id']}/events", params={"after": after}, headers=headers
    )
    _validation_error(r, ["query", "after"])


async def test_events_after_at_the_column_limit_is_served(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    r = await api.client.get(
        f"/v1/productions/{job['id']}/events", params={"after": SEQ_MAX}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_after": SEQ_MAX, "has_more": False}


@pytest.mark.parametrize("path", ["/v1/productions", "/v1/productions/{id}/events"])
async def test_page_size_beyond_its_cap_is_422(api: Api, path: str) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    url = path.format(id=job["id"])
    _validation_error(
        await api.client.get(url, params={"limit": 10**30}, headers=headers), ["query", "limit"]
    )
    # Within the schema's cap, a limit above the server's page size is still capped.
    r = await api.client.get(url, params={"limit": 1000}, headers=headers)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("budget", 1e308),
        ("budget", "Infinity"),
        ("budget", "NaN"),
        ("duration", "Infinity"),
        ("duration", "NaN"),
        ("seed", 10**30),
    ],
)
@pytest.mark.parametrize("route", ["/v1/productions", "/v1/cost-estimate"])
async def test_unbounded_numbers_in_the_body_are_422(
    api: Api, route: str, field: str, value: Any
) -> None:
    _, headers = await api.account()
    literal = value if isinstance(value, str) else repr(value)
    # Python's json accepts the non-standard Infinity/NaN literals: send them raw.
    body = f'{{"prompt": "honeybees at work", "{field}": {literal}}}'.encode()
    r = await api.client.post(
        route, content=body, headers={**headers, "Content-Type": "application/json"}
    )
    _validation_error(r, ["body", field])


async def test_storyboard_numbers_are_bounded(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers, review=True)
    await api.to_review(job["id"])
    url = f"/v1/productions/{job['id']}/storyboard"
    sb = (await api.client.get(url, headers=headers)).json()
    for field, value in (("seed", 10**30), ("seed", -1)):
        r = await api.client.patch(url, json={**sb, field: value}, headers=headers)
        _validation_error(r, ["body", field])
    r = await api.client.patch(url, json={**sb, "language": "../../etc"}, headers=headers)
    _validation_error(r, ["body", "language"])


def _param(op: dict[str, Any], name: str) -> dict[str, Any]:
    for p in op["parameters"]:
        if p["name"] == name:
            schema: dict[str, Any] = p["schema"]
            return schema
    raise AssertionError(f"no parameter {name}")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        resolved: dict[str, Any] = doc["components"]["schemas"][name]
        return resolved
    return schema


def _numbers(doc: dict[str, Any], name: str, seen: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every integer or number property reachable from schema `name`."""
    if name in seen:
        return []
    seen.add(name)
    found: list[tuple[str, dict[str, Any]]] = []
    schema = doc["components"]["schemas"][name]
    for prop, sub in schema.get("properties", {}).items():
        for alt in sub.get("anyOf", [sub]):
            if "$ref" in alt:
                found += _numbers(doc, alt["$ref"].rsplit("/", 1)[-1], seen)
            elif alt.get("type") == "array" and "$ref" in alt.get("items", {}):
                found += _numbers(doc, alt["items"]["$ref"].rsplit("/", 1)[-1], seen)
            elif alt.get("type") in ("integer", "number") and "enum" not in alt:
                found.append((f"{name}.{prop}", alt))
    return found


async def test_openapi_states_every_numeric_bound(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    paths = doc["paths"]
    events = paths["/v1/productions/{production_id}/events"]["get"]
    assert _param(events, "after")["maximum"] == SEQ_MAX
    assert _param(events, "limit")["maximum"] == 1000
    assert _param(paths["/v1/productions"]["get"], "limit")["maximum"] == 1000
    rerender = paths["/v1/productions/{production_id}/scenes/{index}/rerender"]["post"]
    assert "maximum" in _param(rerender, "index")

    seen: set[str] = set()
    numbers = [
        *_numbers(doc, "ProductionRequest", seen),
        *_numbers(doc, "Storyboard", seen),
        *_numbers(doc, "RerenderRequest", seen),
    ]
    assert {n for n, _ in numbers} >= {
        "ProductionRequest.budget",
        "ProductionRequest.duration",
        "Storyboard.seed",
        "Scene.duration",
        "Voice.rate",
    }
    unbounded = [
        n
        for n, s in numbers
        if not (
            {"maximum", "exclusiveMaximum"} & set(s) and {"minimum", "exclusiveMinimum"} & set(s)
        )
    ]
    assert unbounded == []
