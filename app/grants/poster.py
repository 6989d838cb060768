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

import base64
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError
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
        to last byte, takes at most `timeout`: connecting, then each wait for more of the answer,
        is given only what is left of it (a host name's lookup is not; the caller's deadline
        thread bounds that)."""
        deadline = time.monotonic() + self.timeout
        ready = self._prepare()
        try:
            response = ready.pool.request(
                "POST",
                ready.url,
                body=body,
                headers={**headers, **ready.auth},
                preload_content=False,
                redirect=False,
            )
        except NewConnectionError as exc:  # refused, unreachable, no such host: not a timeout
            raise PostFailed(f"{exc.__class__.__name__}: {exc}") from exc
        except Urllib3Timeout as exc:
            raise PostTimeout() from exc
        except HTTPError as exc:
            raise PostFailed(f"{exc.__class__.__name__}: {exc}") from exc
        answer = bytearray()
        read_to_end = False
        try:
            while True:
                _wait_at_most(response, deadline - time.monotonic())
                chunk = response.read1(CHUNK)  # what one read brings: a trickle is timed too
                if not chunk:
                    break
                if len(answer) < limit:
                    answer += chunk[: limit - len(answer)]
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
        # workflow file that is only loaded (`accessbot workflows check`) never needs. A URL
        # that cannot be used is reported without itself (it may hold a secret): the workflow
        # check has said what is wrong with it.
        with self._lock:
            if self._ready is None:
                try:
                    self._ready = self._build()
                except Exception as exc:
                    raise PostFailed(
                        f"the URL could not be used ({exc.__class__.__name__})"
                    ) from None
            return self._ready

    def _build(self) -> _Prepared:
        parts = parse_url(self.url)
        url = Url(parts.scheme, None, parts.host, parts.port, parts.path, parts.query).url
        auth = {"Authorization": _basic(parts.auth)} if parts.auth else {}
        proxy = _proxy_for(parts)
        tls = tls_context(system_ca=False)
        options: dict[str, Any] = {
            "maxsize": POOL_SIZE,
            "retries": False,
            "timeout": urllib3.Timeout(total=self.timeout),  # cloned for each request
            "ssl_context": tls,
        }
        if proxy is None:
            return _Prepared(urllib3.PoolManager(**options), url, auth)
        proxy_parts = parse_url(proxy)
        proxy_auth = {"Proxy-Authorization": _basic(proxy_parts.auth)} if proxy_parts.auth else {}
        pool = urllib3.ProxyManager(
            Url(proxy_parts.scheme, None, proxy_parts.host, proxy_parts.port).url,
            proxy_headers=proxy_auth or None,
            proxy_ssl_context=tls,
            **options,
        )
        return _Prepared(pool, url, auth)


@dataclass(frozen=True)
class _Prepared:
    pool: urllib3.PoolManager
    url: str  # without its user-info, which goes as `auth`
    auth: dict[str, str]


def _wait_at_most(response: urllib3.BaseHTTPResponse, seconds: float) -> None:
    """The next read of `response` waits at most `seconds` for data (none left: a timeout)."""
    if seconds <= 0:
        raise PostTimeout()
    connection = response.connection
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(seconds)  # urllib3 sets it again for the connection's next request


def _basic(userinfo: str) -> str:
    """HTTP Basic credentials from a URL's user-info: percent-decoded, UTF-8 (RFC 7617)."""
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _proxy_for(url: Url) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, as
    httpx, requests and curl read them), or None: none is set, or NO_PROXY covers the host. A
    proxy given without a scheme is an http:// one."""
    proxies = urllib.request.getproxies_environment()
    host = (url.host or "").strip("[]")  # NO_PROXY names an IPv6 host without brackets
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    proxy = proxies.get(url.scheme or "") or proxies.get("all")
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    return proxy
