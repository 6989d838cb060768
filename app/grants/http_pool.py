"""The httpx client a strategy shares between the grant workers' threads."""

from __future__ import annotations

import ssl
import threading
from typing import Any

import httpx

# Keep every connection the workers open, up to the keep-alive expiry. httpcore (1.0) closes a
# "surplus" idle connection (more than max_keepalive_connections, 20 by default, in the pool)
# from whichever thread next touches the pool, and a connection just handed to another
# thread's request still counts as idle: that request is sent, then its answer is read from a
# closed socket (`ReadError: [Errno 9] Bad file descriptor`) after the target has acted on it,
# and the call is retried as if it had failed. The workers' in-flight limits bound how many
# connections there are.
UNBOUNDED = httpx.Limits(max_connections=None, max_keepalive_connections=None)


class SharedClient:
    """One `httpx.Client` (built with `options`) for every thread, made on first use: building
    one (and its TLS context) costs tens of milliseconds, and workers that start together
    must not each build their own and drop the others' connections. `system_ca`: verify TLS
    against the system's CA store (`ssl.create_default_context()`, which honours
    SSL_CERT_FILE / SSL_CERT_DIR) instead of certifi's."""

    def __init__(self, *, system_ca: bool = False, **options: Any) -> None:
        self._options = options
        self._system_ca = system_ca
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    if self._system_ca:
                        self._options["verify"] = ssl.create_default_context()
                    self._client = httpx.Client(limits=UNBOUNDED, **self._options)
                client = self._client
        return client
