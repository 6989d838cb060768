"""Where HTTP requests from Slack reach Bolt: refuse what is too large or unsigned before Bolt
reads or logs it, and parse form bodies by their fields, not by the words they contain."""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.request.internals import (
    build_normalized_headers,
    extract_content_type,
    parse_body,
)
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

# Slack's largest payloads are modal submissions: a view of at most 100 blocks and the values
# typed in them (3,000 characters per input), form-encoded. 512 KiB leaves room for all of it.
DEFAULT_MAX_BODY = 512 * 1024


class SlackFormRequest(BoltRequest):
    """A BoltRequest whose form body is read by its fields.

    Bolt takes any form body that contains the text "payload" anywhere (a channel called
    #payload-team, a user name, the command's text) for an interactivity payload, finds no
    `payload` field, and dispatches an empty request. Here only a `payload` field is one."""

    def __init__(self, *, body: str, query: Any = None, headers: Any = None, **kwargs: Any):
        mode = kwargs.pop("mode", "http")
        if mode != "http" or body is None:
            super().__init__(body=body, query=query, headers=headers, mode=mode, **kwargs)
            return
        # The body is parsed once, here (a modal's payload is a few kilobytes of URL-encoded
        # JSON: parsing it is most of an ack's work); Bolt takes it as it takes Socket Mode's,
        # and keeps the raw body to verify its signature again.
        content_type = extract_content_type(build_normalized_headers(headers))
        parsed = parse_body(body, content_type) if _is_json(body, content_type) else None
        super().__init__(
            body=parsed if parsed is not None else parse_form(body),
            query=query,
            headers=headers,
            mode="socket_mode",
            **kwargs,
        )
        self.raw_body = body
        self.mode = "http"

    def to_copyable(self) -> SlackFormRequest:
        return SlackFormRequest(
            body=self.raw_body,
            query=self.query,
            headers=self.headers,
            context=self.context.to_copyable(),
            mode=self.mode,
        )


def _is_json(body: str, content_type: str | None) -> bool:
    return content_type == "application/json" or body.startswith("{")


def parse_form(body: str) -> dict[str, Any]:
    """A form body: the JSON of its `payload` field if it has one, else its fields."""
    if not body:
        return {}
    fields = dict(form_fields(body))
    if "payload" in fields:
        payload = json.loads(fields["payload"])
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object")
        return payload
    return fields


def form_fields(body: str) -> list[tuple[str, str]]:
    """The fields of a form body, as `urllib.parse.parse_qsl(body, keep_blank_values=True)`
    reads them, in a fifth of its time on Slack's bodies (a modal's payload is 1-3 KB with a
    `%XX` escape every few characters, which `unquote` decodes one character at a time: the
    largest part of an ack's work)."""
    fields = []
    for field in body.split("&"):
        if field:
            name, _, value = field.partition("=")
            fields.append((_unquote(name.replace("+", " ")), _unquote(value.replace("+", " "))))
    return fields


def _unquote(text: str) -> str:
    """`urllib.parse.unquote(text)` (UTF-8, undecodable bytes replaced by U+FFFD). An ASCII text
    whose every `%` starts an escape (`%XX`) is decoded in C: `%XX` becomes `\\xXX`, the
    `unicode_escape` codec turns each into the character of that code (the rest, ASCII, stays),
    and the characters, as bytes, are decoded as UTF-8. Anything else (a backslash of its own, a
    stray `%`, non-ASCII text) goes to `unquote`."""
    if "%" not in text:
        return text
    if text.isascii() and "\\" not in text:
        try:
            escaped = codecs.decode(text.replace("%", "\\x"), "unicode_escape")
        except UnicodeDecodeError:  # a `%` not followed by two hex digits
            return unquote(text)
        return escaped.encode("latin-1").decode("utf-8", "replace")
    return unquote(text)


class SlackHttp:
    """The WSGI app for POST /slack/events.

    A body larger than `max_body` is refused with 413 from its Content-Length, unread; a body
    whose signature is wrong or stale is refused with 401 before Bolt parses it (Bolt would log
    it whole). Each refusal is one log line that holds no part of the body. Bolt verifies the
    signature again on the same raw body."""

    def __init__(self, app: App, *, signing_secret: str, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body
        self._verifier = SignatureVerifier(signing_secret)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, b"POST only\n")
        peer = environ.get("REMOTE_ADDR", "?")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            log.warning("refused a Slack request from %s: bad Content-Length", peer)
            return _answer(start_response, 400, b"bad Content-Length\n")
        if length > self.max_body:
            log.warning(
                "refused a Slack request from %s: %d bytes, over the %d-byte limit",
                peer,
                length,
                self.max_body,
            )
            return _answer(start_response, 413, b"request body too large\n")
        raw = environ["wsgi.input"].read(length) if length else b""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        body = self._verified(raw, timestamp, signature)
        if body is None:
            log.warning(
                "refused a Slack request from %s: missing, stale or wrong signature (%d bytes)",
                peer,
                length,
            )
            return _answer(start_response, 401, b"invalid request\n")
        headers = {
            key[5:].lower().replace("_", "-"): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            request = SlackFormRequest(
                body=body, query=environ.get("QUERY_STRING", ""), headers=headers
            )
        except ValueError:  # a signed body we cannot parse: Slack never sends one
            log.warning("refused a signed Slack request from %s: unparseable body", peer)
            return _answer(start_response, 400, b"unparseable body\n")
        response: BoltResponse = self.app.dispatch(request)
        payload = response.body.encode("utf-8")
        start_response(
            _status(response.status),
            [
                *(
                    (k, v)
                    for k, values in response.headers.items()
                    if k != "content-length"
                    for v in values
                ),
                ("Content-Length", str(len(payload))),
            ],
        )
        return [payload]

    def _verified(self, raw: bytes, timestamp: str, signature: str) -> str | None:
        """The body as text when its signature is right and recent, else None."""
        if not timestamp.isdigit() or not signature:
            return None
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return body if self._verifier.is_valid(body, timestamp, signature) else None


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _answer(start_response: StartResponse, code: int, body: bytes) -> list[bytes]:
    start_response(
        _status(code),
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
