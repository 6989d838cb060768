"""POSTs to one URL over a urllib3 connection pool that the grant workers' threads share.

urllib3 rather than httpx for the Webhook's calls: the same call (sign, send, read the answer)
costs a third less CPU (about 0.3 ms against 0.5 ms on the benchmark machine), and during a
backlog of expiries the workers' CPU is what bounds how fast grants are revoked. What httpx
did for us is kept: TLS verified against the same CA bundle (see `http_pool.tls_context`), a
proxy from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` unless `NO_PROXY` names the host, and
user-info in the URL sent as HTTP Basic authentication. Redirects are not followed and nothing
is retried here: the strategy's `Retry` decides that.

The pool is thread-safe: a call takes an idle connection (or opens one) and gives it back once
its answer is read, so connections are reused by whichever thread calls next. It keeps up to
`POOL_SIZE` idle connections, more than the grant workers can have calls in flight."""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote

import urllib3
from urllib3.exceptions import HTTPError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Url, parse_url

from app.grants.http_pool import tls_context

POOL_SIZE = 512  # the most grant workers a process can have (Settings.grant_workers)
CHUNK = 4096


class PostTimeout(Exception):
    """No answer (connecting, or any read) within the timeout, or the answer kept trickling
    in past it."""


class PostFailed(Exception):
    """The request could not be made or its answer read: `str()` says why, without the URL's
    user-info, path or query."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most `limit` bytes of it

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Poster:
    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._ready: _Prepared | None = None

    def post(self, body: bytes, headers: dict[str, str], *, limit: int) -> Answer:
        """Send `body`; the answer's status and its first `limit` bytes. The whole call, connect
        to last byte, takes at most about `timeout` (plus one read's wait for a target that
        answers a byte at a time: the caller's deadline bounds that)."""
        started = time.monotonic()
        try:
            ready = self._prepare()
            response = ready.pool.request(
                "POST",
                ready.url,
                body=body,
                headers={**headers, **ready.auth},
                preload_content=False,
                redirect=False,
            )
        except Urllib3Timeout as exc:
            raise PostTimeout() from exc
        except HTTPError as exc:
            raise PostFailed(f"{exc.__class__.__name__}: {exc}") from exc
        answer = bytearray()
        read_to_end = False
        try:
            for chunk in response.stream(CHUNK):
                if len(answer) < limit:
                    answer += chunk[: limit - len(answer)]
                if time.monotonic() - started > self.timeout:
                    raise PostTimeout()
            read_to_end = True
        except Urllib3Timeout as exc:
            raise PostTimeout() from exc
        except HTTPError as exc:
            raise PostFailed(f"{exc.__class__.__name__}: {exc}") from exc
        finally:
            if not read_to_end:  # unread bytes would be the next request's answer
                response.close()
            response.release_conn()
        return Answer(response.status, bytes(answer))

    def _prepare(self) -> _Prepared:
        # On first use: the TLS context reads a CA bundle (tens of milliseconds), which a
        # workflow file that is only loaded (`accessbot workflows check`) never needs; and a
        # URL that cannot be parsed is the workflow check's to report, not the loader's.
        with self._lock:
            if self._ready is None:
                parts = parse_url(self.url)
                options = {
                    "maxsize": POOL_SIZE,
                    "retries": False,
                    "timeout": urllib3.Timeout(connect=self.timeout, read=self.timeout),
                    "ssl_context": tls_context(system_ca=False),
                }
                url = Url(parts.scheme, None, parts.host, parts.port, parts.path, parts.query).url
                proxy = _proxy_for(url)
                pool: urllib3.PoolManager
                if proxy is None:
                    pool = urllib3.PoolManager(**options)
                else:
                    proxy_parts = parse_url(proxy)
                    pool = urllib3.ProxyManager(
                        Url(proxy_parts.scheme, None, proxy_parts.host, proxy_parts.port).url,
                        proxy_headers=_proxy_auth(proxy_parts.auth),
                        **options,
                    )
                auth = _basic_auth(parts.auth) if parts.auth else {}
                self._ready = _Prepared(pool, url, auth)
            return self._ready


@dataclass(frozen=True)
class _Prepared:
    pool: urllib3.PoolManager
    url: str  # without its user-info, which goes as `auth`
    auth: dict[str, str]


def _basic_auth(userinfo: str) -> dict[str, str]:
    user, _, password = userinfo.partition(":")
    return urllib3.make_headers(basic_auth=f"{unquote(user)}:{unquote(password)}")


def _proxy_auth(userinfo: str | None) -> dict[str, str] | None:
    if not userinfo:
        return None
    user, _, password = userinfo.partition(":")
    return urllib3.make_headers(proxy_basic_auth=f"{unquote(user)}:{unquote(password)}")


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (as httpx, requests and curl read it), or
    None: none is set, or `NO_PROXY` covers the host."""
    proxies = urllib.request.getproxies_environment()
    parts = parse_url(url)
    if not proxies or urllib.request.proxy_bypass_environment(parts.host or "", proxies):
        return None
    return proxies.get(parts.scheme or "") or proxies.get("all")
