"""Faster intake: read `/access orders-db 1h fixing INC-1234`, and find resources by what
people type. Pure functions over the registry: no Slack, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from app.workflows.loader import Registry
from app.workflows.model import Resource

DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$", re.IGNORECASE)
MAX_WORD = 60  # how much of an unknown word is echoed back


@dataclass(frozen=True)
class Intake:
    """What `/access …` said: a resource (when one matched), and for the one-line form the
    duration (in seconds, as the modal sends it) and the justification."""

    resource_id: str | None = None
    duration_seconds: str | None = None
    justification: str | None = None
    ticket: str | None = None  # a ticket reference found in the justification
    unknown: str | None = None  # the words that matched no resource
    complete: bool = False  # a resource, and more words after it: the one-line form

    @property
    def form(self) -> dict[str, str | None]:
        return {
            "resource_id": self.resource_id,
            "duration_seconds": self.duration_seconds,
            "justification": self.justification,
            "ticket": self.ticket,
        }


def parse_duration(word: str) -> timedelta | None:
    """`90m`, `1h`, `1h30m`, `2d`, `45s` (case-insensitive); None if it is not one."""
    match = DURATION.match(word.strip())
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return duration if duration > timedelta(0) else None


def find_resource(registry: Registry, words: list[str]) -> tuple[Resource | None, int]:
    """The resource the first words name (its id, or its name, case-insensitive) and how many
    words that took; the longest match wins, so a name with spaces can be typed whole."""
    by_key: dict[str, Resource] = {}
    for workflow in registry.workflows:
        for resource in workflow.resources:
            by_key.setdefault(resource.id.casefold(), resource)
            by_key.setdefault(" ".join(resource.name.split()).casefold(), resource)
    for count in range(len(words), 0, -1):
        resource = by_key.get(" ".join(words[:count]).casefold())
        if resource is not None:
            return resource, count
    return None, 0


def read_command(registry: Registry, text: str) -> Intake:
    """`<resource> [<duration> <justification…>]`. The resource alone preselects it; with
    more words, they are the duration and the justification (checked later, like the modal's)."""
    words = text.split()
    if not words:
        return Intake()
    resource, used = find_resource(registry, words)
    if resource is None:
        return Intake(unknown=text.strip()[:MAX_WORD])
    rest = words[used:]
    if not rest:
        return Intake(resource_id=resource.id)
    duration = parse_duration(rest[0])
    if duration is not None:
        rest = rest[1:]
    justification = " ".join(rest) or None
    found = registry.find(resource.id)
    rule = found[0].ticket if found else None
    return Intake(
        resource_id=resource.id,
        duration_seconds=str(int(duration.total_seconds())) if duration else None,
        justification=justification,
        # `/access orders-db 1h fixing INC-1234`: the ticket is the reference in the text
        ticket=rule.find(justification) if rule and justification else None,
        complete=True,
    )


def search_resources(registry: Registry, query: str, *, limit: int = 100) -> list[Resource]:
    """Resources whose id or name contains `query` (case-insensitive): those that start with it
    first, then by name; at most `limit` (Slack shows 100 options)."""
    needle = query.strip().casefold()
    found: list[tuple[int, str, Resource]] = []
    for workflow in registry.workflows:
        for resource in workflow.resources:
            rid, name = resource.id.casefold(), resource.name.casefold()
            if needle in rid or needle in name:
                rank = 0 if rid.startswith(needle) or name.startswith(needle) else 1
                found.append((rank, name, resource))
    found.sort(key=lambda item: (item[0], item[1]))
    return [resource for _, _, resource in found[:limit]]
