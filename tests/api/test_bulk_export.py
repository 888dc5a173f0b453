"""`GET /v1/exports/productions`: the listing, streamed whole as CSV or NDJSON,
with the listing's own filter, q and scope."""

from __future__ import annotations

import csv
import io
import json

from aiprod.exports.listing import COLUMNS
from tests.api.conftest import Api
from tests.api.test_productions import _error


async def test_the_listing_exports_as_csv_and_ndjson_for_its_owner_only(api: Api) -> None:
    _, alice = await api.account()
    _, bob = await api.account()
    honey = await api.submit(alice, prompt="How honeybees make honey", title="=HYPERLINK(1)")
    horses = await api.submit(alice, prompt="Les chevaux de Camargue", language="fr")
    theirs = await api.submit(bob, prompt="Honeybees of the Alps")

    r = await api.client.get("/v1/exports/productions", params={"format": "csv"}, headers=alice)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="aiprod-productions-')
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == COLUMNS
    assert [row["id"] for row in rows] == [horses["id"], honey["id"]]  # newest first
    assert rows[1]["title"] == "'=HYPERLINK(1)"  # no formula reaches a spreadsheet
    assert rows[0]["language"] == "fr" and rows[0]["status"] == "queued"

    r = await api.client.get(
        "/v1/exports/productions",
        params={"format": "ndjson", "q": "honeybee", "sort": "created"},
        headers=alice,
    )
    assert r.headers["content-type"].startswith("application/x-ndjson")
    items = [json.loads(line) for line in r.text.splitlines()]
    assert [i["id"] for i in items] == [honey["id"]]  # bob's honeybees are not alice's
    assert set(items[0]) == set(COLUMNS)

    _, admin_headers = await api.account("admin")
    r = await api.client.get(
        "/v1/exports/productions",
        params={"format": "ndjson", "q": "honeybee"},
        headers=admin_headers,
    )
    assert {json.loads(line)["id"] for line in r.text.splitlines()} == {honey["id"], theirs["id"]}


async def test_an_unreadable_filter_is_400_before_streaming(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.get(
        "/v1/exports/productions", params={"filter": "colour:red"}, headers=headers
    )
    assert _error(r, 400, "invalid_filter")["details"]["position"] == 0
    r = await api.client.get("/v1/exports/productions", params={"format": "xml"}, headers=headers)
    _error(r, 422, "validation_error")
    assert (await api.client.get("/v1/exports/productions")).status_code == 401
