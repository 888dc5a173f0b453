"""One verifying TLS client context per process, shared by every outgoing client.

Building a context loads the system's CA bundle (~18 ms); webhook delivery and
JWKS fetching each made their own per client, i.e. per app start and per
fetch.  An ``SSLContext`` is meant to be shared across connections and
threads; this one verifies certificates and host names as httpx's default does.
"""

from __future__ import annotations

import ssl
from functools import lru_cache


@lru_cache(maxsize=1)
def client_context() -> ssl.SSLContext:
    return ssl.create_default_context()
