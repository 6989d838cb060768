"""What the Webhook's HTTP calls keep from the client they had before (httpx): user-info sent as
Basic authentication, TLS verified against the CA bundle and the host name, a proxy from the
environment unless NO_PROXY names the host."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from urllib3.util import parse_url

from app.grants.base import GrantError
from app.grants.poster import _proxy_for
from app.grants.webhook import Webhook
from tests.support.grant_context import revoke_context
from tests.support.http_fake import Answer, FakeServer, json_answer
from tests.support.tls_fake import TlsFakeServer

SECRET = "transport-secret"


class Recorder(FakeServer):
    """Answers 200 to anything and keeps what it was sent: (method, target, headers)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            self.seen.append((method, path, {k.lower(): v for k, v in headers.items()}))
        return json_answer({"ok": True})


class TlsRecorder(TlsFakeServer, Recorder):
    pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_recorder() -> Iterator[TlsRecorder]:
    server = TlsRecorder()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_user_info_in_the_url_is_sent_as_basic_auth_and_left_out_of_the_request_line(
    recorder: Recorder,
) -> None:
    url = recorder.base_url.replace("http://", "http://svc:p%40ss%3Aword@") + "/hook?token=t1"
    Webhook(url=url, secret=SECRET).revoke(revoke_context())

    [(method, target, headers)] = recorder.seen
    assert (method, target) == ("POST", "/hook?token=t1")
    # RFC 7617: "Basic " + base64(user ":" password), user-info percent-decoded first
    assert headers["authorization"] == "Basic " + base64.b64encode(b"svc:p@ss:word").decode()


def test_a_url_without_user_info_sends_no_authorization(recorder: Recorder) -> None:
    Webhook(url=recorder.base_url + "/hook", secret=SECRET).revoke(revoke_context())
    [(_, _, headers)] = recorder.seen
    assert "authorization" not in headers


def test_tls_is_verified_against_the_trusted_ca(
    tls_recorder: TlsRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_recorder.trust(monkeypatch)
    Webhook(url=tls_recorder.base_url + "/hook", secret=SECRET).revoke(revoke_context())
    assert [(m, t) for m, t, _ in tls_recorder.seen] == [("POST", "/hook")]


def test_a_certificate_from_an_unknown_ca_is_refused(tls_recorder: TlsRecorder) -> None:
    with pytest.raises(GrantError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        Webhook(url=tls_recorder.base_url + "/hook", secret=SECRET, timeout=5).revoke(
            revoke_context()
        )
    assert tls_recorder.seen == []


def test_a_certificate_for_another_host_is_refused(
    tls_recorder: TlsRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_recorder.trust(monkeypatch)  # trusted CA, but the certificate names 127.0.0.1 only
    url = f"https://localhost:{tls_recorder.port}/hook"
    with pytest.raises(GrantError, match=r"[Hh]ostname mismatch|doesn't match|not valid for"):
        Webhook(url=url, secret=SECRET, timeout=5).revoke(revoke_context())
    assert tls_recorder.seen == []


def test_calls_go_through_the_proxy_the_environment_names(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = recorder  # it answers 200 to whatever it is asked to forward
    monkeypatch.setenv("HTTP_PROXY", proxy.base_url.replace("http://", "http://px:pw@"))
    target = "http://127.0.0.1:9/hook"  # nothing listens there: only the proxy can answer
    Webhook(url=target, secret=SECRET, timeout=5).revoke(revoke_context())

    [(method, request_target, headers)] = proxy.seen
    assert (method, request_target) == ("POST", target)  # absolute-form, as to a proxy
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"px:pw").decode()


def test_no_proxy_sends_the_call_directly(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy that is not there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    Webhook(url=recorder.base_url + "/hook", secret=SECRET, timeout=5).revoke(revoke_context())
    assert [(m, t) for m, t, _ in recorder.seen] == [("POST", "/hook")]


def test_user_info_is_sent_as_utf_8(recorder: Recorder) -> None:
    url = recorder.base_url.replace("http://", "http://svc:p%C3%A9%E2%82%AC@") + "/hook"
    Webhook(url=url, secret=SECRET).revoke(revoke_context())
    [(_, _, headers)] = recorder.seen
    assert headers["authorization"] == "Basic " + base64.b64encode("svc:pé€".encode()).decode()


def test_a_url_that_cannot_be_used_fails_without_showing_it() -> None:
    url = "http://svc:hunter2@127.0.0.1:99999999/hook?token=QUERYTOKEN"  # no such port
    with pytest.raises(GrantError) as failed:
        Webhook(url=url, secret=SECRET, timeout=5).revoke(revoke_context())
    assert "could not be used" in str(failed.value)
    assert "hunter2" not in str(failed.value) and "QUERYTOKEN" not in str(failed.value)


def test_a_refused_connection_says_so_at_once_not_that_it_timed_out() -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(GrantError) as failed:
        Webhook(url=f"http://127.0.0.1:{port}/hook", secret=SECRET, timeout=5).revoke(
            revoke_context()
        )
    assert "refused" in str(failed.value) and "did not answer" not in str(failed.value)
    assert time.monotonic() - started < 2


def test_an_answer_that_trickles_in_is_cut_off_at_the_timeout() -> None:
    """Headers at once, then a byte every 0.2 s of a 50-byte body: every read gets data, so no
    read times out; the call must end at its timeout all the same (not after 10 s)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
            for _ in range(50):
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    started = time.monotonic()
    try:
        with pytest.raises(GrantError, match=r"did not answer within 1s"):
            Webhook(url=url, secret=SECRET, timeout=1.0).revoke(revoke_context())
        assert time.monotonic() - started < 1.6
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_a_proxy_without_a_scheme_is_an_http_proxy(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"127.0.0.1:{recorder.port}")  # as people often write it
    target = "http://127.0.0.1:9/hook"
    Webhook(url=target, secret=SECRET, timeout=5).revoke(revoke_context())
    assert [(m, t) for m, t, _ in recorder.seen] == [("POST", target)]


def test_no_proxy_names_an_ipv6_host_without_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "::1")
    assert _proxy_for(parse_url("http://[::1]:8080/hook")) is None
    assert _proxy_for(parse_url("http://127.0.0.1:8080/hook")) == "http://proxy.example:3128"


class ConnectProxy:
    """An HTTP proxy that only tunnels (`CONNECT host:port`), as HTTPS goes through a proxy: it
    reads the CONNECT, answers 200, then copies bytes both ways. Keeps each CONNECT line."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connects: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(4096)
                if not data:
                    return
                head += data
            line = head.split(b"\r\n", 1)[0].decode()
            self.connects.append(line)
            method, authority, _ = line.split(" ")
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = authority.rpartition(":")
            with socket.create_connection((host, int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
                pump.start()
                _copy(client, upstream)
                pump.join(5)

    def stop(self) -> None:
        self.server.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_https_goes_through_the_proxy_in_a_tunnel(
    tls_recorder: TlsRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_recorder.trust(monkeypatch)
    monkeypatch.delenv("NO_PROXY")  # trust() sets it to reach the fake directly
    monkeypatch.delenv("no_proxy")
    proxy = ConnectProxy()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    try:
        Webhook(url=tls_recorder.base_url + "/hook", secret=SECRET, timeout=5).revoke(
            revoke_context()
        )
    finally:
        proxy.stop()
    [connect] = proxy.connects  # the request line of the tunnel (http.client sends HTTP/1.0)
    assert connect.startswith(f"CONNECT 127.0.0.1:{tls_recorder.port} HTTP/")
    assert [(m, t) for m, t, _ in tls_recorder.seen] == [("POST", "/hook")]
