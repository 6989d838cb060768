"""Text from outside (a target's error, an exception) made safe to store and show."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A URL in free text: a scheme, `://`, then anything up to white space or a closing quote.
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+""")
# An HTTP request line's target with a query, as urllib3 logs each request at DEBUG:
# `http://host:443 "POST /hook?token=x HTTP/1.1" 200 2`.
_REQUEST_TARGET_QUERY = re.compile(
    r"""\b(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|CONNECT|TRACE) (/[^\s?'"<>]*)\?[^\s'"<>]*"""
)


def redact_url(url: str) -> str:
    """The URL without what may be a secret: user-info becomes `***@`, a query `?***`, and a
    fragment is dropped. `https://svc:pass@host/hook?token=x` → `https://***@host/hook?***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "***" if parts.query else ""
    redacted = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    if query and not redacted.endswith("?***"):
        redacted += "?***"
    return redacted


def redact_urls(text: str) -> str:
    """Every URL in `text` redacted as by `redact_url`, and the query of every request line's
    target (`POST /hook?token=x` → `POST /hook?***`)."""
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    return _REQUEST_TARGET_QUERY.sub(r"\1 \2?***", text)


def clean(value: object, limit: int = 2000) -> str:
    """Printable text of at most `limit` characters: NUL and other control characters become
    '?', lone surrogates (undecodable bytes) become U+FFFD, URLs lose their user-info and
    query (`redact_url`), and long text is clipped with '…'.

    PostgreSQL refuses NUL in text and JSONB; one such error must never stop other work."""
    try:
        text = str(value)
    except Exception as exc:  # a __str__ that raises is the caller's problem, not ours
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    text = redact_urls(_CONTROL.sub("?", text))
    return text if len(text) <= limit else text[: limit - 1] + "…"
