"""Pytest fixtures for the fake PagerDuty; load with `-p tests.support.pagerduty_fixtures`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pagerduty import RestApiV2Client

from app.oncall.pagerduty import make_pagerduty_client
from tests.support.fake_pagerduty import FakePagerDuty


@pytest.fixture
def fake_pagerduty(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePagerDuty]:
    """A running fake whose CA the real client trusts: httpcore2 reads SSL_CERT_FILE (and
    SSL_CERT_DIR) when a client is created, so create clients after this fixture."""
    fake = FakePagerDuty()
    fake.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(fake.ca_bundle_path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for proxy_bypass in ("NO_PROXY", "no_proxy"):  # in case the machine sets HTTPS_PROXY
        monkeypatch.setenv(proxy_bypass, "127.0.0.1")
    yield fake
    fake.stop()


@pytest.fixture
def pagerduty_client(fake_pagerduty: FakePagerDuty) -> Iterator[RestApiV2Client]:
    client = make_pagerduty_client(fake_pagerduty.token, fake_pagerduty.base_url)
    yield client
    client.close()
