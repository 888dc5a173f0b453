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
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, Response, expect

from tests.e2e.browser.harness import (
    ADMIN_EMAIL,
    PASSWORD,
    PRODUCER_EMAIL,
    REVIEW,
    SCRIPT,
    VIEWER_EMAIL,
    Studio,
    Tabs,
    attacker_site,
    axe_check,
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
    found = []
    for line in studio.server.log.read_bytes()[since:].decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)  # the server's JSON log lines (aiprod.access)
        except ValueError:
            continue
        if (
            isinstance(entry, dict)
            and entry.get("logger") == "aiprod.access"
            and entry.get("method") == "POST"
            and entry.get("path") == "/v1/productions"
        ):
            found.append(int(entry["status"]))
    return found


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


# ------------------------------------------------------------ the studio


def sign_in_through_the_form(page: Page, email: str, password: str) -> None:
    form = page.get_by_test_id("signin-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()


def test_sign_in_wrong_password_and_sign_out(tabs: Tabs, studio: Studio) -> None:
    """The studio opens on its sign-in form; a wrong password says so and
    keeps it there; the admin's password (printed once by `aiprod serve`)
    signs in; signing out returns to the form and ends the session."""
    page = tabs()
    tabs.watch(page).allow(r"/v1/auth/session$")  # the wrong password's 401
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/signin"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shoot(page, "signin")

    sign_in_through_the_form(page, ADMIN_EMAIL, "not the password at all")
    expect(page.get_by_test_id("signin-error")).to_contain_text("Wrong email or password")
    expect(page).to_have_url(re.compile(r"#/signin"))
    assert not _session_cookie(page)

    sign_in_through_the_form(page, ADMIN_EMAIL, studio.admin_password)
    expect(page).to_have_url(re.compile(r"#/productions$"))
    expect(page.get_by_test_id("current-user")).to_contain_text(ADMIN_EMAIL)
    expect(page.get_by_role("heading", name="Productions", exact=True)).to_be_visible()
    cookie = _session_cookie(page)
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Lax", cookie
    # The session cookie is not for scripts: the page cannot read it.
    assert "aiprod_session" not in page.evaluate("document.cookie")
    page.reload()  # the cookie keeps the session across a reload
    expect(page.get_by_test_id("current-user")).to_contain_text(ADMIN_EMAIL)

    # An access token that no longer works (as when it expires): the studio
    # renews the session with the cookie's refresh token, and stays signed in.
    # The studio's page is left first: a page still running when its cookie
    # is swapped could refresh with it while unloading (see the issue note).
    refresh = cookie["value"].split("~")[1]
    page.goto("about:blank")
    page.context.add_cookies([{**cookie, "value": f"not.a.token~{refresh}"}])  # type: ignore[list-item]
    page.goto(f"{studio.base}/#/productions")
    expect(page.get_by_test_id("current-user")).to_contain_text(ADMIN_EMAIL)
    page.goto("/#/settings/keys")  # a page that reads the API with the renewed cookie
    expect(page.get_by_test_id("create-key-form")).to_be_visible()
    renewed = _session_cookie(page)
    assert renewed and renewed["value"].split("~")[1] != refresh  # a new refresh token

    page.get_by_test_id("signout-button").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/signin"))
    assert not _session_cookie(page)
    page.goto("/#/productions")  # signed out: the studio sends it to sign in
    expect(page.get_by_test_id("signin-form")).to_be_visible()


def _session_cookie(page: Page) -> dict[str, Any] | None:
    for cookie in page.context.cookies():
        if cookie["name"] == "aiprod_session":
            return dict(cookie)
    return None


# Recorded in every page: each status badge's value as it changes (the
# production page and the list update them live, over the WebSocket).
BADGE_RECORDER = """
window.__badges = [];
new MutationObserver(() => {
  for (const b of document.querySelectorAll('[data-testid=status-badge]')) {
    const key = location.hash + ' ' + b.dataset.status;
    if (window.__badges[window.__badges.length - 1] !== key) window.__badges.push(key);
  }
}).observe(document, { subtree: true, childList: true, attributes: true });
"""

VIDEO_READY = """() => {
  const v = document.querySelector('[data-testid=video-player]');
  return Boolean(v && v.readyState >= 1 && v.duration > 0);
}"""

PLAY = """async () => {
  const v = document.querySelector('[data-testid=video-player]');
  v.muted = true;
  await v.play();
  await new Promise((done) => setTimeout(done, 600));
  v.pause();
  return { time: v.currentTime, duration: v.duration, error: v.error && v.error.code,
           width: v.videoWidth, height: v.videoHeight };
}"""

SUBTITLES = """async () => {
  const track = document.querySelector('[data-testid=video-player] track');
  track.track.mode = 'hidden';  // a track loads once it is not disabled
  for (let i = 0; i < 100 && track.readyState < 2; i++) {
    await new Promise((done) => setTimeout(done, 50));
  }
  return { state: track.readyState, cues: track.track.cues ? track.track.cues.length : 0,
           first: track.track.cues && track.track.cues.length ? track.track.cues[0].text : '' };
}"""


def test_new_production_progresses_live_and_plays(tabs: Tabs, studio: Studio) -> None:
    """A producer fills the "new" form and submits; the production page
    follows it to done without a reload (badge and stage progress change
    live); the video plays in the page with its subtitle track; the download
    links are there and download."""
    page = tabs(PRODUCER_EMAIL, path=None)
    page.context.add_init_script(BADGE_RECORDER)
    page.goto("/#/new")
    form = page.get_by_test_id("new-production-form")
    expect(form).to_be_visible()
    form.get_by_test_id("prompt-input").fill("How honeybees turn nectar into honey")
    form.get_by_test_id("title-input").fill("Honey, live")
    form.get_by_label("Preset", exact=True).select_option("quick_social")
    form.get_by_label("Resolution", exact=True).select_option("480p")
    with page.expect_response(_estimate_of({"duration": 8, "resolution": "480p"})):
        form.get_by_label("Duration (seconds)", exact=True).fill("8")
    expect(page.get_by_test_id("cost-estimate")).to_contain_text("854×480")  # the live estimate
    shoot(page, "new")
    page.evaluate("window.__sameDocument = true")
    page.get_by_test_id("submit-production").click()

    expect(page).to_have_url(re.compile(r"#/productions/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    badge = page.get_by_test_id("status-badge").first
    expect(badge).to_have_attribute("data-status", "completed", timeout=90_000)
    progress = page.get_by_test_id("stage-progress")
    expect(progress.locator("progress").first).to_have_attribute("value", "100")
    for stage in ("plan", "narrate", "visuals", "music", "montage", "qa"):
        expect(progress.locator(f"[data-stage={stage}]")).to_have_attribute("data-state", "done")
    assert page.evaluate("window.__sameDocument") is True  # never reloaded
    seen = [b.split(" ")[1] for b in page.evaluate("window.__badges") if job_id in b]
    assert seen[-1] == "completed" and len(seen) >= 2, seen  # it changed in place

    player = page.get_by_test_id("video-player")
    expect(player).to_be_visible()
    page.wait_for_function(VIDEO_READY, timeout=30_000)
    played = page.evaluate(PLAY)
    assert played["error"] is None and played["time"] > 0, played
    assert 5 < played["duration"] < 15 and (played["width"], played["height"]) == (854, 480)
    subtitles = page.evaluate(SUBTITLES)
    assert subtitles["state"] == 2 and subtitles["cues"] >= 1, subtitles

    shoot(page, "production")
    links = page.get_by_test_id("artifact-link")
    names = set(links.all_inner_texts())
    assert {"video.mp4", "subtitles.srt", "subtitles.vtt", "poster.jpg"} <= names, names
    for fmt in ("json", "csv", "zip"):
        expect(page.get_by_test_id(f"export-{fmt}")).to_be_visible()
    with page.expect_download() as download:
        links.filter(has_text=re.compile(r"^subtitles\.srt$")).click()
    assert download.value.suggested_filename == "subtitles.srt"
    assert "-->" in Path(download.value.path()).read_text()

    page.goto("/#/productions")
    row = page.get_by_test_id("production-row").filter(has_text="Honey, live")
    expect(row.get_by_test_id("status-badge")).to_have_attribute("data-status", "completed")
    shoot(page, "productions")


def _estimate_of(wanted: dict[str, Any]) -> Callable[[Response], bool]:
    """Matches the answer to the new page's estimate of a request with `wanted`."""

    def match(response: Response) -> bool:
        if not response.url.endswith("/v1/cost-estimate") or response.status != 200:
            return False
        body = json.loads(response.request.post_data or "{}")
        return all(body.get(k) == v for k, v in wanted.items())

    return match


def test_review_edit_approve_then_rerender_a_scene(tabs: Tabs, studio: Studio) -> None:
    """With the review gate on, the production stops at its storyboard; the
    producer rewrites a scene's narration, approves, and it renders with the
    new words; then re-renders one scene from the storyboard and sees it
    finish again."""
    page = tabs(PRODUCER_EMAIL, path=None)
    page.context.add_init_script(BADGE_RECORDER)
    page.goto("/#/new")
    form = page.get_by_test_id("new-production-form")
    expect(form).to_be_visible()
    form.get_by_test_id("mode-script").click()
    form.get_by_test_id("script-input").fill(SCRIPT)
    form.get_by_test_id("title-input").fill("Honey, reviewed")
    form.get_by_label("Preset", exact=True).select_option(REVIEW["preset"])
    form.get_by_label("Aspect ratio", exact=True).select_option("1:1")  # renders faster
    form.get_by_label("Resolution", exact=True).select_option("480p")
    form.get_by_test_id("review-checkbox").check()
    page.get_by_test_id("submit-production").click()

    expect(page).to_have_url(re.compile(r"#/productions/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    badge = page.get_by_test_id("status-badge").first
    expect(badge).to_have_attribute("data-status", "awaiting_approval", timeout=60_000)
    scenes = page.get_by_test_id("storyboard-scene")
    expect(scenes.first.get_by_label("Narration", exact=True)).to_be_visible()
    new_words = "At first light, the honeybees fly out of the hive."
    scenes.first.get_by_label("Narration", exact=True).fill(new_words)
    shoot(page, "storyboard")
    page.get_by_test_id("approve-button").click()
    expect(badge).to_have_attribute("data-status", "completed", timeout=90_000)
    expect(scenes.first.locator("blockquote")).to_have_text(new_words)
    with studio.bearer(PRODUCER_EMAIL) as client:
        board = client.get(f"/v1/productions/{job_id}/storyboard").json()
        assert board["scenes"][0]["narration"] == new_words

    rerender = scenes.nth(1).get_by_test_id("rerender-button")
    expect(rerender).to_be_visible()
    rerender.click()
    dialog = page.get_by_role("dialog", name="Re-render scene 2")
    expect(dialog).to_be_visible()
    again = "Back in the hive, the nectar slowly turns into golden honey."
    dialog.get_by_label("Narration", exact=True).fill(again)
    dialog.get_by_test_id("rerender-submit").click()
    expect(dialog).to_be_hidden()
    # Live, without a reload: done, then working on the scene, then done again.
    page.wait_for_function(
        "(id) => window.__badges.filter((b) => b.endsWith(id + ' completed')).length >= 2",
        arg=job_id,
        timeout=90_000,
    )
    expect(badge).to_have_attribute("data-status", "completed")
    seen = [b.split(" ")[1] for b in page.evaluate("window.__badges") if job_id in b]
    after = seen[seen.index("completed") + 1 :]
    assert after[-1] == "completed" and set(after[:-1]) & {"queued", "processing"}, seen
    expect(scenes.nth(1).locator("blockquote")).to_have_text(again)
    with studio.bearer(PRODUCER_EMAIL) as client:
        events = client.get(f"/v1/productions/{job_id}/events", params={"limit": 500}).json()
        completed = [e for e in events["items"] if e["type"] == "job.completed"]
        assert len(completed) == 2, [e["type"] for e in events["items"]]
    page.wait_for_function(VIDEO_READY, timeout=30_000)


def test_api_key_secret_once_works_then_revoked(tabs: Tabs, studio: Studio) -> None:
    """Settings → API keys: the new key's secret is shown once; it works as a
    bearer; revoked from the page, it answers 401."""
    page = tabs(ADMIN_EMAIL, path="/#/settings/keys")
    form = page.get_by_test_id("create-key-form")
    form.get_by_label("Name", exact=True).fill("browser-test key")
    page.get_by_test_id("create-key").click()
    secret_box = page.get_by_test_id("api-key-secret")
    expect(secret_box).to_be_visible()
    secret = secret_box.inner_text().strip()
    assert len(secret) > 20
    shoot(page, "key-secret")
    with httpx.Client(base_url=studio.base, timeout=30) as client:
        me = client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200 and me.json()["email"] == ADMIN_EMAIL, me.text
        page.get_by_role("button", name="I have copied it").click()
        expect(secret_box).to_be_hidden()
        row = page.get_by_test_id("api-key-row").filter(has_text="browser-test key")
        expect(row).to_be_visible()
        page.reload()
        expect(row).to_be_visible()
        assert secret not in page.content()  # shown once, never again
        shoot(page, "keys")

        row.get_by_test_id("revoke-key").click()
        page.get_by_test_id("confirm-button").click()
        expect(row).to_contain_text("Revoked")
        gone = client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert gone.status_code == 401, gone.text


WRITE_FROM_PAGE = """async ([path, body]) => {
  const token = (await (await fetch('/v1/csrf-token')).json()).csrf_token;
  const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json',
    'X-CSRF-Token': token }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}"""


def test_a_viewer_sees_no_write_controls_and_cannot_write(
    tabs: Tabs, studio: Studio, viewer_productions: dict[str, str]
) -> None:
    """A viewer signs in and sees their productions, but no way to create,
    approve, re-render, cancel or delete; and the server refuses a write the
    page makes anyway (with a valid CSRF token): 403."""
    page = tabs(path="/")
    sign_in_through_the_form(page, VIEWER_EMAIL, PASSWORD)
    expect(page.get_by_test_id("current-user")).to_contain_text("Viewer")
    expect(page.get_by_test_id("production-row")).to_have_count(2)
    assert page.get_by_role("link", name="New production").count() == 0
    assert page.get_by_role("link", name="Webhooks").count() == 0

    page.goto(f"/#/productions/{viewer_productions['completed']}")
    page.wait_for_function(VIDEO_READY, timeout=30_000)  # results: readable
    expect(page.get_by_test_id("storyboard-scene").first).to_be_visible()
    for testid in ("rerender-button", "delete-button", "cancel-button", "retry-button"):
        assert page.get_by_test_id(testid).count() == 0, testid

    page.goto(f"/#/productions/{viewer_productions['awaiting_approval']}")
    expect(page.get_by_test_id("storyboard-scene").first).to_be_visible()
    expect(page.get_by_text("The storyboard waits for approval.")).to_be_visible()
    for testid in ("approve-button", "save-storyboard", "cancel-button", "delete-button"):
        assert page.get_by_test_id(testid).count() == 0, testid
    assert page.get_by_test_id("storyboard-scene").get_by_role("textbox").count() == 0

    page.goto("/#/new")
    expect(page.get_by_text("Your role cannot create productions.")).to_be_visible()
    assert page.get_by_test_id("new-production-form").count() == 0

    watch = tabs.watch(page)
    watch.allow(r"/v1/productions(/[^/]+/approve)?$")
    made = page.evaluate(WRITE_FROM_PAGE, ["/v1/productions", request_body(title="viewer")])
    assert made["status"] == 403, made
    assert not made["body"]["error"]["code"].startswith("csrf"), made
    approve = f"/v1/productions/{viewer_productions['awaiting_approval']}/approve"
    approved = page.evaluate(WRITE_FROM_PAGE, [approve, {}])
    assert approved["status"] == 403, approved


# ------------------------------------------------------------ accessibility

MAIN_PAGES = [
    ("productions", "/#/productions", "production-row"),
    ("new", "/#/new", "new-production-form"),
    ("production", "/#/productions/{finished}", "video-player"),
    ("keys", "/#/settings/keys", "create-key-form"),
    ("webhooks", "/#/settings/webhooks", "create-webhook-form"),
    ("users", "/#/admin/users", "user-row"),
    ("audit", "/#/admin/audit", "audit-row"),
]


def test_main_pages_have_no_serious_accessibility_violation(
    tabs: Tabs, studio: Studio, finished: str
) -> None:
    """axe-core on the sign-in page and on each main page of an admin: no
    violation of impact serious or critical (the others are printed)."""
    page = tabs()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    axe_check(page, "signin")

    page = tabs(ADMIN_EMAIL, path=None)
    for name, path, ready in MAIN_PAGES:
        page.goto(path.format(finished=finished))
        expect(page.get_by_test_id(ready).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        axe_check(page, name)
        if name in ("webhooks", "users", "audit"):
            shoot(page, name)
