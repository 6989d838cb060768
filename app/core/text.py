"""Text from outside (a target's error, an exception) made safe to store and show."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(value: object, limit: int = 2000) -> str:
    """Printable text of at most `limit` characters: NUL and other control characters become
    '?', lone surrogates (undecodable bytes) become U+FFFD, and long text is clipped with '…'.

    PostgreSQL refuses NUL in text and JSONB; one such error must never stop other work."""
    try:
        text = str(value)
    except Exception as exc:  # a __str__ that raises is the caller's problem, not ours
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
