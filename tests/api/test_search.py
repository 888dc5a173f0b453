"""`GET /v1/productions` with `filter`, `q` and `sort`, over HTTP (the search
itself is tested in tests/search)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.api.test_productions import _error


async def _list(api: Api, headers: dict[str, str], **params: Any) -> Any:
    return await api.client.get("/v1/productions", params=params, headers=headers)


async def test_filter_q_and_sort_over_http(api: Api) -> None:
    _, headers = await api.account()
    honey = await api.submit(headers, prompt="How honeybees are making honey", aspect="9:16")
    horses = await api.submit(
        headers, prompt="Les chevaux de Camargue", language="fr", title="Chevaux"
    )
    r = await api.client.post(f"/v1/productions/{horses['id']}/cancel", headers=headers)
    assert r.status_code == 200, r.text

    r = await _list(api, headers, filter="status:cancelled|failed")
    assert [j["id"] for j in r.json()["items"]] == [horses["id"]]
    r = await _list(api, headers, q="honeybee make")
    assert [j["id"] for j in r.json()["items"]] == [honey["id"]]
    r = await _list(api, headers, q="cheval", filter="language:fr,aspect:16:9")
    assert [j["id"] for j in r.json()["items"]] == [horses["id"]]
    r = await _list(api, headers, filter='title:"chevaux"', status="cancelled")
    assert [j["id"] for j in r.json()["items"]] == [horses["id"]]
    r = await _list(api, headers, sort="created")
    assert [j["id"] for j in r.json()["items"]] == [honey["id"], horses["id"]]
    r = await _list(api, headers, sort="-cost", limit=1)
    first, cursor = r.json()["items"], r.json()["next_cursor"]
    r = await _list(api, headers, sort="-cost", limit=1, cursor=cursor)
    assert {first[0]["id"], r.json()["items"][0]["id"]} == {honey["id"], horses["id"]}
    assert r.json()["next_cursor"] is None


async def test_unreadable_filters_answer_400_with_position_and_expectation(api: Api) -> None:
    _, headers = await api.account()
    cases = [
        ({"filter": "status:queued,"}, "filter", 14, "a field name"),
        ({"filter": "title:my video"}, "filter", 9, "',' (and)"),
        ({"filter": "colour:red"}, "filter", 0, "a field:"),
        ({"filter": "cost:>cheap"}, "filter", 6, "a number"),
        ({"filter": "status:>queued"}, "filter", 7, "a value (status takes no comparison)"),
        ({"filter": "owner:someone@example.com"}, "filter", 0, "a field you may use"),
        ({"q": "?!"}, "q", 0, "words"),
    ]
    for params, parameter, position, expected in cases:
        err = _error(await _list(api, headers, **params), 400, "invalid_filter")
        details = err["details"]
        assert details["parameter"] == parameter, err
        assert details["position"] == position, err
        assert details["expected"].startswith(expected), err
        assert set(details) == {"parameter", "position", "expected", "got"}
    err = _error(await _list(api, headers, sort="title"), 422, "validation_error")
    assert err["details"][0]["loc"] == ["query", "sort"]
    err = _error(await _list(api, headers, sort="cost", cursor="garbage"), 422, "validation_error")
    assert err["details"][0]["loc"] == ["query", "cursor"]


async def test_admins_filter_everyones_productions_by_owner(api: Api) -> None:
    alice, alice_headers = await api.account()
    _, bob_headers = await api.account()
    _, admin_headers = await api.account("admin")
    a = await api.submit(alice_headers, prompt="Alice's garden")
    b = await api.submit(bob_headers, prompt="Bob's garden")
    r = await _list(api, admin_headers, q="garden")
    assert {j["id"] for j in r.json()["items"]} == {a["id"], b["id"]}
    r = await _list(api, admin_headers, q="garden", filter=f"owner:{alice.email}")
    assert [j["id"] for j in r.json()["items"]] == [a["id"]]
    r = await _list(api, bob_headers, q="garden")
    assert [j["id"] for j in r.json()["items"]] == [b["id"]]


async def test_the_openapi_description_documents_the_grammar(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/productions"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert "clause" in params["filter"]["description"]
    assert "stemming" in params["q"]["description"]
    assert "-created" in params["sort"]["schema"]["enum"]
    assert "400" in operation["responses"]
