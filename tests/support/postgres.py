"""The real PostgreSQL the suite runs on: TEST_DATABASE_URL's server, or one the suite starts.

Each test gets a fresh database cloned from a template that `alembic upgrade head` built once,
so the migrations themselves are under test and no test sees another's rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from app.db.embedded import EmbeddedPostgres
from app.db.migrate import upgrade

TEMPLATE = "accessbot_test_template"


class SuitePostgres:
    def __init__(self) -> None:
        self._embedded: EmbeddedPostgres | None = None
        self.root: Path | None = (
            None  # the temporary directory of our own server; stop() removes it
        )
        external = os.environ.get("TEST_DATABASE_URL")
        if external:
            url = make_url(external.replace("postgres://", "postgresql://", 1))
            self._base = url.set(drivername="postgresql+psycopg")
        else:
            root = self.root = Path(tempfile.mkdtemp(prefix="accessbot-test-pg-"))
            root.chmod(0o755)  # the postgres user must reach it when we are root
            self._embedded = EmbeddedPostgres(root / "data", durable=False)
            self._embedded.start()
            self._base = make_url(self._embedded.url("postgres"))
        self._admin_conninfo = self._base.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._drop(TEMPLATE)
        self._execute(f'CREATE DATABASE "{TEMPLATE}"')
        upgrade(self.url(TEMPLATE))

    def url(self, database: str) -> str:
        return self._base.set(database=database).render_as_string(hide_password=False)

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self._admin_conninfo, autocommit=True) as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    def _drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def new_database(self) -> str:
        name = f"accessbot_test_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return name

    def drop_database(self, name: str) -> None:
        self._drop(name)

    def stop(self) -> None:
        try:
            self._drop(TEMPLATE)
        finally:
            if self._embedded:
                self._embedded.stop()
            self._remove_root()

    def _remove_root(self) -> None:
        if self.root is None:
            return
        # `pg_ctl stop -w` removes postmaster.pid once the server is down: never delete the files
        # of a server that is still running.
        if self._embedded and (self._embedded.data_dir / "postmaster.pid").exists():
            return
        # Files inside belong to the postgres user when we are root; root removes them.
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
