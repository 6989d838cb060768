"""HTTP clients for the strategies: the TLS context they verify with, and the httpx clients
(one per grant worker thread) of the strategies that call an API with httpx."""

from __future__ import annotations

import ssl
import threading
from typing import Any

import httpx


class SharedClient:
    """An `httpx.Client` (built with `options`) for each thread that calls, kept for its next
    calls, all sharing one TLS context (building that is what costs: tens of milliseconds).

    Not one client for all threads: httpcore's pool (1.0) does work for every connection it
    holds on every request (a readability poll of each idle one), so a pool shared by dozens of
    workers cost more CPU than the calls; and it closes a "surplus" idle connection (over 20)
    from whichever thread touches it next, even one just handed to another thread's request,
    which was then sent and read its answer from a closed socket (`ReadError: [Errno 9] Bad file
    descriptor`) after the target had acted on it. A worker thread's client holds the one
    connection that thread uses. `system_ca`: verify TLS against the system's CA store
    (`ssl.create_default_context()`, which honours SSL_CERT_FILE / SSL_CERT_DIR) instead of
    certifi's."""

    def __init__(self, *, system_ca: bool = False, **options: Any) -> None:
        self._options = options
        self._system_ca = system_ca
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def get(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(verify=self._context(), **self._options)
            self._local.client = client
        return client

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                self._tls = tls_context(system_ca=self._system_ca)
            return self._tls


def tls_context(*, system_ca: bool) -> ssl.SSLContext:
    """Verify against the system's CA store (`ssl.create_default_context()`), or else as httpx
    does by default: certifi's bundle, unless SSL_CERT_FILE or SSL_CERT_DIR names another. Both
    honour those two variables."""
    return ssl.create_default_context() if system_ca else httpx.create_ssl_context()
