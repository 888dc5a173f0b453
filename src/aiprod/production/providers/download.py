"""Fetch a file a provider pointed at (a stock photo, a clip, a generated image).

The URL comes from a remote service, so it is treated like a user's webhook
URL: the SSRF guard (``aiprod.ssrf``) checks every address its host resolves
to, the request goes to the checked address (TLS still verifies the name),
and each redirect is checked again.  The body streams to disk with a size
limit (``Content-Length`` is refused early when it already says too much) and
must be of an expected media type.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import httpx

from aiprod.production.providers.client import ProviderError
from aiprod.ssrf import SSRFBlocked, WebhookURLError, parse_url, resolve_sync

MAX_REDIRECTS = 5
_CHUNK = 1 << 16


def fetch(
    provider: str,
    url: str,
    out: Path,
    *,
    allowed_types: tuple[str, ...],
    max_bytes: int,
    allow_private: bool,
    timeout: float = 60.0,
) -> str:
    """Stream `url` to `out`; returns the media type.  Raises ProviderError
    (refused address, too large, wrong type, HTTP error)."""
    call = "download"
    with httpx.Client(timeout=timeout, follow_redirects=False) as http:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = parse_url(url)
                address = resolve_sync(target, allow_private)
            except (SSRFBlocked, WebhookURLError) as exc:
                raise ProviderError(provider, call, f"refused URL: {exc}") from None
            except OSError:
                raise ProviderError(
                    provider, call, f"cannot resolve {target.host}", transient=True
                ) from None
            request = http.build_request(
                "GET",
                httpx.URL(url).copy_with(host=address),
                headers={"host": target.netloc, "user-agent": "aiprod"},
                extensions={"sni_hostname": target.host},
            )
            try:
                response = http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise ProviderError(
                    provider, call, f"network error: {type(exc).__name__}", transient=True
                ) from None
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise ProviderError(provider, call, "a redirect without a Location")
                    url = urljoin(url, location)
                    continue
                if not response.is_success:
                    raise ProviderError(
                        provider,
                        call,
                        f"HTTP {response.status_code} fetching the asset",
                        status=response.status_code,
                        transient=response.status_code >= 500 or response.status_code == 429,
                    )
                kind = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
                if not any(
                    kind == t or (t.endswith("/") and kind.startswith(t)) for t in allowed_types
                ):
                    raise ProviderError(
                        provider, call, f"unexpected media type {kind or '(none)'} for an asset"
                    )
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise ProviderError(
                        provider, call, f"the asset is {int(declared)} bytes, over {max_bytes}"
                    )
                _stream(provider, response, out, max_bytes)
                return kind
            finally:
                response.close()
    raise ProviderError(provider, call, f"more than {MAX_REDIRECTS} redirects")


def _stream(provider: str, response: httpx.Response, out: Path, max_bytes: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    size = 0
    try:
        with tmp.open("wb") as f:
            for chunk in response.iter_bytes(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ProviderError(
                        provider, "download", f"the asset exceeds {max_bytes} bytes"
                    )
                f.write(chunk)
        if size == 0:
            raise ProviderError(provider, "download", "the asset is empty", transient=True)
        tmp.replace(out)
    except httpx.HTTPError as exc:
        raise ProviderError(
            provider, "download", f"the transfer broke off: {type(exc).__name__}", transient=True
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
