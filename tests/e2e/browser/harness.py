"""What the browser tests share: the server with its three users, the watch on
every page (console errors, uncaught exceptions, CSP violations), signing in,
an attacker's web server on another origin, axe-core and the screenshots."""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.conftest import unavailable
from tests.e2e.test_http import Server

# Debian's Chromium, never one Playwright downloads (`.ci/run` installs it).
CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "docs" / "images"
SCREENSHOT_LIMIT = 150_000  # bytes per committed PNG
VIEWPORT = {"width": 1280, "height": 800}

ADMIN_EMAIL = "admin@localhost"
PRODUCER_EMAIL = "producer@example.com"
VIEWER_EMAIL = "viewer@example.com"
PASSWORD = "a long enough browser password"  # the producer's and the viewer's
SCRIPT = "Honeybees leave the hive at dawn.\n\nBack home, the nectar becomes honey."


# Fast-track requests skip the review gate, and a script without a duration
# takes the preset's default length for that decision: brand_campaign (45 s)
# keeps the gate; the script still sets the real length, a few seconds.
REVIEW: dict[str, Any] = {"preset": "brand_campaign", "review": True}


def chromium_or_skip() -> Path:
    """Debian's Chromium, or skip (fail under ``CI=true``) when it is missing."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@dataclass
class Studio:
    """The running `aiprod serve` and who may sign in to it."""

    server: Server
    admin_password: str
    data_dir: Path

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def port(self) -> int:
        return self.server.port

    def password(self, email: str) -> str:
        return self.admin_password if email == ADMIN_EMAIL else PASSWORD

    @contextmanager
    def bearer(self, email: str = ADMIN_EMAIL) -> Iterator[httpx.Client]:
        """An httpx client logged in as `email` with a bearer token (no cookie)."""
        with httpx.Client(base_url=self.base, timeout=30) as client:
            r = client.post(
                "/v1/auth/login", json={"email": email, "password": self.password(email)}
            )
            assert r.status_code == 200, r.text
            client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            yield client

    @contextmanager
    def cookie_client(self, email: str = ADMIN_EMAIL) -> Iterator[tuple[httpx.Client, str]]:
        """An httpx client signed in like a browser (session cookie) and its CSRF token."""
        with httpx.Client(base_url=self.base, timeout=30) as client:
            r = client.post(
                "/v1/auth/session", json={"email": email, "password": self.password(email)}
            )
            assert r.status_code == 200, r.text
            yield client, str(r.json()["csrf_token"])


def one_time_password(server: Server, timeout: float = 10) -> str:
    """The first admin's password, as `aiprod serve` prints it once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"one-time password:\s*(\S+)", server.log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.1)
    pytest.fail(f"serve printed no one-time password:\n{server.output()}")


def request_body(**extra: Any) -> dict[str, Any]:
    """The smallest real production: a two-scene script, 480×480, 24 fps, ~5 s."""
    return {
        "script": SCRIPT,
        "aspect": "1:1",
        "resolution": "480p",
        "fps": 24,
        "preset": "quick_social",
        "music": "calm",
        **extra,
    }


def wait_status(
    client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/productions/{job_id}").json()
        if job.get("status") in statuses:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"production {job_id} never reached {statuses}: {job}")
        time.sleep(0.2)


# ------------------------------------------------------------ the page watch

# Recorded in the page (before any of its scripts): every CSP violation the
# browser reports, sent to the test through an exposed binding, which outlives
# navigations.
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (e) => {
  const report = window.__aiprodCsp;
  if (typeof report === 'function') {
    report([e.violatedDirective, e.blockedURI, e.sourceFile, e.lineNumber, e.sample].join(' | '));
  }
}, true);
"""


@dataclass
class Watch:
    """What went wrong in a browser context: console errors, uncaught
    exceptions and CSP violations (a failed request is one too: Chromium
    logs it).  `allow` excuses the failed requests a test makes on purpose
    (by URL)."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    allowed_urls: list[re.Pattern[str]] = field(default_factory=list)
    ignore_origins: set[str] = field(default_factory=set)

    def allow(self, url_pattern: str) -> None:
        self.allowed_urls.append(re.compile(url_pattern))

    def attach(self, context: BrowserContext) -> None:
        context.expose_binding("__aiprodCsp", lambda source, text: self._csp(source, text))
        context.add_init_script(CSP_LISTENER)
        context.on("page", self.attach_page)
        for page in context.pages:
            self.attach_page(page)

    def attach_page(self, page: Page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self._exception(page, error))

    def _foreign(self, url: str) -> bool:
        return any(url.startswith(origin) for origin in self.ignore_origins)

    def _csp(self, source: dict[str, Any], text: str) -> None:
        frame = source.get("frame")
        url = frame.url if frame is not None else ""
        if not self._foreign(url):
            self.csp.append(f"{url}: {text}")

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if self._foreign(page.url):
            return
        text = message.text
        if "Content Security Policy" in text:
            self.csp.append(f"{page.url}: {text}")
            return
        if message.type == "warning" and text.startswith("i18n: missing key"):
            self.console.append(f"{page.url}: {text}")  # a label shows its key
            return
        if message.type != "error":
            return
        where = str(message.location.get("url", ""))
        if text.startswith("Failed to load resource") and any(
            p.search(where) for p in self.allowed_urls
        ):
            return
        self.console.append(f"{page.url}: {text} (at {where})")

    def _exception(self, page: Page, error: Any) -> None:
        if not self._foreign(page.url):
            self.exceptions.append(f"{page.url}: {error}")

    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console]
            + [f"uncaught exception: {m}" for m in self.exceptions]
            + [f"CSP violation: {m}" for m in self.csp]
        )


# ------------------------------------------------------------------ pages


@dataclass
class Tabs:
    """Opens watched pages; `watch(page)` says what went wrong in its context."""

    browser: Browser
    studio: Studio
    opened: list[tuple[BrowserContext, Watch]] = field(default_factory=list)

    def __call__(self, user: str | None = None, path: str | None = "/") -> Page:
        """A page of a new context, signed in as `user` (session cookie) when
        given, at `path` of the studio (None: blank)."""
        context = self.browser.new_context(
            base_url=self.studio.base,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="en-US",
            timezone_id="UTC",
            color_scheme="light",
        )
        watch = Watch()
        watch.attach(context)
        self.opened.append((context, watch))
        if user is not None:
            sign_in_with_cookie(context, self.studio, user)
        page = context.new_page()
        if path is not None:
            page.goto(path)
        return page

    def watch(self, page: Page) -> Watch:
        for context, watch in self.opened:
            if page.context is context:
                return watch
        raise KeyError("not a page of this test")

    def close(self) -> list[str]:
        problems = []
        for context, watch in self.opened:
            problems += watch.problems()
            context.close()
        return problems


# ---------------------------------------------------------------- signing in


def sign_in_with_cookie(context: BrowserContext, studio: Studio, email: str) -> None:
    """Sign the context in through the API (the UI sign-in has its own test):
    the session cookie lands in the context's cookie jar."""
    r = context.request.post(
        f"{studio.base}/v1/auth/session",
        data={"email": email, "password": studio.password(email)},
    )
    assert r.status == 200, r.text()


# --------------------------------------------------------- attacker's server


@contextmanager
def attacker_site(pages: dict[str, str]) -> Iterator[int]:
    """A tiny web server of another origin serving `pages` (path → HTML)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------ accessibility


def axe_check(page: Page, name: str) -> list[dict[str, Any]]:
    """Run axe-core on the page: fail on serious or critical violations, print
    the others (and return them)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations: list[dict[str, Any]] = results.response.get("violations", [])
    grave = [v for v in violations if v.get("impact") in ("serious", "critical")]
    for v in violations:
        if v not in grave:
            print(f"axe [{name}] {v.get('impact')}: {v['id']}: {v['help']} ({len(v['nodes'])})")
    assert not grave, f"axe on {name}:\n" + "\n".join(
        f"{v['impact']}: {v['id']}: {v['help']}: "
        + "; ".join(str(n.get("target")) + " " + n.get("failureSummary", "") for n in v["nodes"])
        for v in grave
    )
    return violations


# --------------------------------------------------------------- screenshots


def screenshots_wanted() -> bool:
    return os.environ.get("AIPROD_SCREENSHOTS") == "1"


def shoot(page: Page, name: str) -> Path | None:
    """Save the page as docs/images/studio-<name>.png (only with
    AIPROD_SCREENSHOTS=1): the 1280×800 viewport in CSS pixels, scrolled to
    the top; past 150 KB, reduced to 256 colours, then scaled down."""
    if not screenshots_wanted():
        return None
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"studio-{name}.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), scale="css", animations="disabled", caret="hide")
    if path.stat().st_size > SCREENSHOT_LIMIT:
        from PIL import Image

        with Image.open(path) as shot:
            image = shot.convert("RGB")
        for factor in (1.0, 0.75, 0.6, 0.5):
            size = (int(image.width * factor), int(image.height * factor))
            smaller = image if factor == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
            smaller.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
            if path.stat().st_size <= SCREENSHOT_LIMIT:
                break
    assert path.stat().st_size <= SCREENSHOT_LIMIT, f"{path} is too large"
    return path
