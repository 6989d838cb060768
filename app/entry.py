"""The `accessbot` command's entry point: the bot's libraries are imported with the garbage
collector paused.

Importing them (SQLAlchemy, Bolt, psycopg, pydantic, ...) allocates a few hundred thousand
objects that live as long as the process; the collector, counting them as they come, would
pass over them again and again: about a tenth of a second of every start-up, which is when a
backlog of expired grants waits for the bot. Once imported they are frozen out of its passes
(`gc.freeze`), and it runs as usual for what the command does next."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No collection while the body runs; what it built is then frozen out of later ones."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> None:
    with collector_paused():
        from app.cli import main as run
    run(argv)


if __name__ == "__main__":
    main()
