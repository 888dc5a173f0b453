"""The web studio in a real browser (Debian's Chromium, headless, driven by
Playwright) against a real `aiprod serve`: signing in and out, a production
followed live and played, the storyboard review, API keys, what a viewer may
do, CSRF from another site, accessibility (axe-core), and the API docs pages
served without any outside request.  Every page is watched for console
errors and CSP violations (conftest.py).

One module, one xdist group: the server, its renders and the browser are made
once for all the tests.  ``AIPROD_SCREENSHOTS=1`` also saves the screenshots
of docs/studio.md (docs/images/studio-*.png)."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Request

from tests.e2e.browser.harness import (
    ADMIN_EMAIL,
    Studio,
    Tabs,
    attacker_site,
    request_body,
    shoot,
)

pytestmark = pytest.mark.xdist_group("browser")


# ------------------------------------------------------------- API docs pages


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_outside(tabs: Tabs, studio: Studio, path: str) -> None:
    """Swagger UI and ReDoc come from the server itself: no request leaves
    its origin (no CDN, no web font), and they render under their CSP."""
    page = tabs(path=None)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(path)
    assert response is not None and response.status == 200
    if path == "/docs":
        operations = page.locator(".opblock")
        operations.first.wait_for()
        assert operations.count() > 20
        assert page.get_by_text("/v1/productions").first.is_visible()
    else:
        page.get_by_role("heading", name="AIPROD API").first.wait_for()
        # The sidebar lists the operations (collapsed, so attached, not visible).
        page.get_by_text("Log in with email and password").first.wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    outside = [
        url
        for url in requests
        if not url.startswith(studio.base + "/") and urlsplit(url).scheme not in ("data", "blob")
    ]
    assert outside == [], f"{path} fetched from outside the server: {outside}"
    shoot(page, path.strip("/"))


# ------------------------------------------------------ CSRF, over plain HTTP


def test_cookie_requests_need_the_csrf_token(studio: Studio) -> None:
    """A cookie-authenticated unsafe request without `X-CSRF-Token` is 403
    `csrf_missing`, with a wrong one `csrf_invalid`; with its own token it
    passes; a bearer-authenticated one needs none; safe methods need none."""
    with studio.cookie_client(ADMIN_EMAIL) as (client, token):
        assert client.get("/v1/me").status_code == 200  # GET: no token needed
        body = request_body(title="csrf probe")

        missing = client.post("/v1/productions", json=body)
        assert missing.status_code == 403, missing.text
        assert missing.json()["error"]["code"] == "csrf_missing"

        wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        for bad in (wrong, "v1.1.x.y", "nonsense"):
            r = client.post("/v1/productions", json=body, headers={"X-CSRF-Token": bad})
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "csrf_invalid", (bad, r.text)

        # Another session's token does not fit this session.
        with studio.cookie_client(ADMIN_EMAIL) as (_, other_token):
            r = client.post("/v1/productions", json=body, headers={"X-CSRF-Token": other_token})
            assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_invalid", r.text

        # The header alone, without its cookie (double submit): invalid.
        csrf_cookie = client.cookies.get("aiprod_csrf")
        assert csrf_cookie == token
        client.cookies.delete("aiprod_csrf")
        r = client.post("/v1/productions", json=body, headers={"X-CSRF-Token": token})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_invalid", r.text

        # A fresh token (GET /v1/csrf-token sets its cookie again) works.
        fresh = client.get("/v1/csrf-token")
        assert fresh.status_code == 200, fresh.text
        good = client.post(
            "/v1/productions",
            json={**body, "review": True, "preset": "brand_campaign"},
            headers={"X-CSRF-Token": fresh.json()["csrf_token"]},
        )
        assert good.status_code == 202, good.text
        job_id = good.json()["job"]["id"]
        cancel = client.post(
            f"/v1/productions/{job_id}/cancel",
            headers={"X-CSRF-Token": fresh.json()["csrf_token"]},
        )
        assert cancel.status_code in (200, 202), cancel.text

    with studio.bearer(ADMIN_EMAIL) as bearer:
        r = bearer.post(
            "/v1/productions", json={**body, "review": True, "preset": "brand_campaign"}
        )
        assert r.status_code == 202, r.text
        r = bearer.post(f"/v1/productions/{r.json()['job']['id']}/cancel")
        assert r.status_code in (200, 202), r.text


def test_sign_in_from_another_site_is_refused(studio: Studio) -> None:
    """Login CSRF: a sign-in whose Origin is another site's page is 403
    `origin_not_allowed`; the studio's own origin and no Origin pass."""
    credentials = {"email": ADMIN_EMAIL, "password": studio.admin_password}
    with httpx.Client(base_url=studio.base, timeout=30) as client:
        evil = client.post(
            "/v1/auth/session", json=credentials, headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403, evil.text
        assert evil.json()["error"]["code"] == "origin_not_allowed"
        assert "set-cookie" not in evil.headers
        own = client.post("/v1/auth/session", json=credentials, headers={"Origin": studio.base})
        assert own.status_code == 200, own.text
        assert "aiprod_session" in client.cookies
        refresh = client.post("/v1/auth/session/refresh", headers={"Origin": "http://evil.example"})
        assert refresh.status_code == 403, refresh.text


# ------------------------------------------------- CSRF, from a real browser

ATTACK_TITLE = "pwned by a form"
# A text/plain form whose one field spells JSON: {"script": "...", "title": "pwned…="}
FORM_PAGE = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}/v1/productions" enctype="text/plain">
<input type="hidden" name='{{"script": "Attack at dawn. The honey is ours.", "title": "{title}'
 value='"}}'>
</form>
<script>document.getElementById('f').submit();</script>
</body></html>"""
FETCH_PAGE = """<!doctype html><html><body><p id="out">…</p>
<script>
fetch("{target}/v1/productions", {{
  method: "POST", credentials: "include", mode: "no-cors",
  body: JSON.stringify({{script: "Attack at dawn. The honey is ours.", title: "{title}"}})
}}).then(() => {{ document.getElementById("out").textContent = "sent"; }},
         (e) => {{ document.getElementById("out").textContent = "blocked " + e; }});
</script></body></html>"""


def _productions_titled(studio: Studio, title: str) -> list[dict[str, object]]:
    with studio.bearer(ADMIN_EMAIL) as client:
        r = client.get("/v1/productions", params={"limit": 100})
        assert r.status_code == 200, r.text
        return [p for p in r.json()["items"] if str(p.get("title", "")).startswith(title)]


def _posted_productions(studio: Studio, since: int) -> list[int]:
    """The statuses the server's access log gives POST /v1/productions after
    byte `since` (the browser cannot read a refused cross-origin answer)."""
    log = studio.server.log.read_bytes()[since:].decode(errors="replace")
    return [int(code) for code in re.findall(r'"POST /v1/productions HTTP/1.1" (\d{3})', log)]


@pytest.mark.parametrize("attacker_host", ["127.0.0.1", "localhost"])
def test_another_origin_cannot_post_with_the_session(
    tabs: Tabs, studio: Studio, attacker_host: str
) -> None:
    """Signed in as admin on http://127.0.0.1:<port>, the browser opens an
    attacker's page on another origin: same site (127.0.0.1, another port:
    the SameSite=Lax cookie rides along, the missing CSRF token refuses it)
    and another site (localhost: the cookie stays home).  An auto-submitted
    form and a credentialed fetch both reach the server and both fail; no
    production is made."""
    page = tabs(ADMIN_EMAIL, path=None)
    title = f"{ATTACK_TITLE} via {attacker_host}"
    target = studio.base
    pages = {
        "/form.html": FORM_PAGE.format(target=target, title=title),
        "/fetch.html": FETCH_PAGE.format(target=target, title=title),
    }
    same_site = attacker_host == "127.0.0.1"
    log_start = studio.server.log.stat().st_size
    with attacker_site(pages) as port:
        origin = f"http://{attacker_host}:{port}"
        watch = tabs.watch(page)
        watch.ignore_origins.add(origin)
        watch.allow(r"/v1/productions$")  # the form's answer, shown as a page
        sent: list[Request] = []
        page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)

        with page.expect_response(lambda r: r.url == f"{target}/v1/productions") as answer:
            page.goto(f"{origin}/form.html")
        form = answer.value
        assert form.status == (403 if same_site else 401), form.text()
        code = json.loads(form.text())["error"]["code"]
        assert code == ("csrf_missing" if same_site else "unauthorized")
        cookie = form.request.all_headers().get("cookie", "")
        assert ("aiprod_session=" in cookie) == same_site, cookie

        page.goto(f"{origin}/fetch.html")
        page.wait_for_function("document.getElementById('out').textContent !== '…'")
        # Cross-Origin-Resource-Policy hides the answer from the page: the
        # fetch fails in the page, but the request went out.
        assert page.inner_text("#out").startswith("blocked"), page.inner_text("#out")

    assert [r.url for r in sent] == [f"{target}/v1/productions"] * 2
    deadline = time.monotonic() + 5
    while len(_posted_productions(studio, log_start)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _posted_productions(studio, log_start) == [403 if same_site else 401] * 2
    assert _productions_titled(studio, ATTACK_TITLE) == []
