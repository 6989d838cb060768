"""A reader of Prometheus' text exposition format (0.0.4), written from the format's
description, not from the client library: `# HELP`/`# TYPE` lines, then one sample a line,
`name{label="value",...} number`, label values escaped with backslashes."""

from __future__ import annotations

import re
from dataclasses import dataclass

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> tuple[list[Sample], dict[str, str]]:
    """The samples, and each metric family's type."""
    samples: list[Sample] = []
    types: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        parsed = {
            k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            for k, v in LABEL.findall(labels or "")
        }
        samples.append(Sample(name, parsed, float(value)))
    return samples, types


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The one sample named `name` with exactly these labels (None: absent)."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, f"{name}{labels} appears {len(found)} times"
    return found[0] if found else None
