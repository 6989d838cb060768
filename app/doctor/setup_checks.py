"""The database, the workflows, and each grant strategy's own check()."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, pool, text

from app.core.deadline import DeadlineExceeded, call_with_deadline
from app.core.lifecycle import strategy_deadline
from app.core.text import clean, redact_url
from app.doctor import Check, failed, passed
from app.workflows.loader import Registry, WorkflowError, load_workflows


def workflows(directory: Path) -> tuple[list[Check], Registry | None]:
    try:
        registry = load_workflows(directory)
    except WorkflowError as exc:
        checks = [
            failed(f"workflows: {problem}", "fix it (the same as `accessbot workflows check`)")
            for problem in exc.problems
        ]
        return checks, None
    return [
        passed(
            f"workflows in {directory}: {len(registry.workflows)} workflow(s), "
            f"{len(registry)} resource(s) pass `workflows check`"
        )
    ], registry


def database(database_url: str | None, head: str) -> list[Check]:
    if not database_url:
        return [
            passed(
                "DATABASE_URL is not set: `accessbot serve` will run an embedded PostgreSQL "
                "(set DATABASE_URL in production)"
            )
        ]
    shown = redact_url(database_url)
    engine = create_engine(
        database_url, poolclass=pool.NullPool, connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as connection:
            has_table = connection.execute(
                text("SELECT to_regclass('alembic_version') IS NOT NULL")
            ).scalar()
            version = (
                connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if has_table
                else None
            )
    except Exception as exc:  # any driver or network failure
        return [
            failed(
                f"the database at {shown} is unreachable ({exc.__class__.__name__})",
                "check DATABASE_URL, the server, and the network",
            )
        ]
    finally:
        engine.dispose()
    checks = [passed(f"the database at {shown} answers")]
    if version != head:
        checks.append(
            failed(
                f"the database schema is at {version or 'nothing'}, this code needs {head}",
                "run `accessbot db upgrade`",
            )
        )
    else:
        checks.append(passed(f"the database schema is at the latest migration ({head})"))
    return checks


def strategies(registry: Registry) -> list[Check]:
    checks: list[Check] = []
    seen: set[int] = set()
    for workflow in registry.workflows:
        for resource in workflow.resources:
            strategy = resource.grant
            check = getattr(strategy, "check", None)
            if id(strategy) in seen or not callable(check):
                continue
            seen.add(id(strategy))
            what = f"resource {resource.id!r}: {strategy.describe()}"
            try:
                call_with_deadline(check, strategy_deadline(strategy), name="doctor-check")
            except DeadlineExceeded as exc:
                checks.append(failed(f"{what} {exc}", "check the target is up and reachable"))
            except Exception as exc:  # the strategy's own words: cleaned, URLs redacted
                checks.append(failed(f"{what}: {clean(str(exc), 300)}", "fix the target"))
            else:
                checks.append(passed(f"{what} answers"))
    return checks
