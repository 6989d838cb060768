"""`accessbot doctor`: a newcomer's checklist, one line per fact, ✓ or ✗ and what to do.

Each check module returns `Check`s; nothing here changes anything (the webhook check sends a
signed `ping` event, which a receiver acknowledges and otherwise ignores)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""  # what to do, for a ✗

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        return f"{mark} {self.what}" + (f": {self.fix}" if self.fix and not self.ok else "")


def passed(what: str) -> Check:
    return Check(True, what)


def failed(what: str, fix: str) -> Check:
    return Check(False, what, fix)
