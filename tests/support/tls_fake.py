"""A FakeServer over HTTPS: a throwaway `trustme` CA whose PEM is at `ca_bundle_path`."""

from __future__ import annotations

import ssl
import tempfile
import threading
from pathlib import Path

import pytest
import trustme

from tests.support.http_fake import FakeServer


class TlsFakeServer(FakeServer):
    scheme = "https"

    def __init__(self) -> None:
        super().__init__()
        self._ca = trustme.CA()
        self._tls_dir = tempfile.TemporaryDirectory(prefix="fake-tls-")
        self.ca_bundle_path = Path(self._tls_dir.name) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_bundle_path))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert("127.0.0.1").configure_cert(context)
        self.httpd.socket = context.wrap_socket(
            self.httpd.socket, server_side=True, do_handshake_on_connect=False
        )

    def start(self) -> None:
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        super().stop()
        self._tls_dir.cleanup()

    def trust(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make clients created from now on trust this server's CA (and reach it directly)."""
        monkeypatch.setenv("SSL_CERT_FILE", str(self.ca_bundle_path))
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        for proxy_bypass in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(proxy_bypass, "127.0.0.1")
