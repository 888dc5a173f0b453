"""What the OpenAPI description promises at the edges holds: a 405 names every
method the path serves, and a body that is not JSON at all answers the
documented 400 in the one error shape."""

from __future__ import annotations

import re
from typing import Any

from tests.api.conftest import Api


def _documented(spec: dict[str, Any], path: str) -> set[str]:
    """Methods of every documented path template that `path` fits."""
    methods: set[str] = set()
    for template, item in spec.items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            methods |= {m.upper() for m in item if m in ("get", "post", "patch", "put", "delete")}
    return methods


async def test_405_allow_lists_every_method_of_the_path(api: Api) -> None:
    spec = api.app.openapi()["paths"]
    checked = 0
    for path in spec:
        if "{" in path:
            continue
        documented = _documented(spec, path)
        r = await api.client.request("TRACE", path)
        assert r.status_code == 405, path
        allowed = {m.strip() for m in r.headers["Allow"].split(",")} - {"HEAD"}
        assert allowed == documented, path
        assert r.json()["error"]["code"] == "method_not_allowed"
        checked += 1
    assert checked > 10


async def test_every_operation_with_a_body_documents_400(api: Api) -> None:
    operations = [
        (path, method, op)
        for path, item in api.app.openapi()["paths"].items()
        for method, op in item.items()
        if "requestBody" in op
    ]
    assert operations
    assert [f"{m} {p}" for p, m, op in operations if "400" not in op["responses"]] == []


async def test_a_body_that_is_not_utf8_json_answers_400(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions",
        content=b"\x80 not utf-8 \xc3",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"
