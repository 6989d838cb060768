"""What the Webhook's HTTP calls keep from the client they had before (httpx): user-info sent as
Basic authentication, TLS verified against the CA bundle and the host name, a proxy from the
environment unless NO_PROXY names the host."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import pytest

from app.grants.base import GrantError
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
