"""Log lines nobody can forge: text with control characters escaped, or one JSON object a line;
URLs in them lose their user-info and query (httpx logs every request's URL at INFO, urllib3
each request line at DEBUG).

User text reaches logs (a justification in an error, a user name, a target's answer); a newline
in it must never start what looks like a line of our own."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Literal

from app.core.text import redact_urls

# C0 and C1 controls, DEL, and the characters that reorder or hide text on a terminal.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def escape_controls(text: str) -> str:
    r"""Each unsafe character as a visible escape: `\n`, `\t`, `\xNN`, `\uNNNN`."""

    def visible(match: re.Match[str]) -> str:
        char = match.group(0)
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
        if named:
            return named
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE.sub(visible, text)


class SafeTextFormatter(logging.Formatter):
    """One line per record: the message escaped; a traceback follows on lines that each start
    with `  | `, so no line of it can pass for a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        copy = _with_message(record, escape_controls(redact_urls(record.getMessage())))
        if self.usesTime():
            copy.asctime = self.formatTime(copy, self.datefmt)
        line = self.formatMessage(copy)
        extra = self._exception_text(record)
        if extra:
            line += "".join(f"\n  | {escape_controls(part)}" for part in extra.splitlines())
        return line

    def _exception_text(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_urls(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True)  # escapes every control character


def _with_message(record: logging.LogRecord, message: str) -> logging.LogRecord:
    copy = logging.makeLogRecord(record.__dict__)
    copy.message = message
    return copy


def configure_logging(level: str | int, log_format: Literal["text", "json"] = "text") -> None:
    """The root logger, for the process: one handler on stderr with the chosen formatter."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(SafeTextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # Libraries' routine chatter (Alembic's plugin set-up and DDL notes, APScheduler's every
    # job run) below INFO: a person reads what accessbot says; DEBUG shows everything.
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(
            logging.WARNING if root.getEffectiveLevel() >= logging.INFO else logging.NOTSET
        )


NOISY_LOGGERS = ("alembic", "apscheduler")
