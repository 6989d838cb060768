"""A PostgreSQL server of our own, for `accessbot serve` without DATABASE_URL and for the tests.

Uses the machine's `initdb` and `pg_ctl`. PostgreSQL refuses to run as root, so when we are root
the server runs as the `postgres` user, in a directory that user can reach.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROOT_FALLBACK_DIR = Path("/var/lib/accessbot/postgres")


class EmbeddedPostgresError(RuntimeError):
    pass


def find_pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise EmbeddedPostgresError(
        f"`{name}` was not found: install PostgreSQL (Debian: apt-get install postgresql) "
        "or set DATABASE_URL to a server of yours"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _RunAs:
    user: str | None
    uid: int
    gid: int


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(user=None, uid=os.geteuid(), gid=os.getegid())
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise EmbeddedPostgresError(
            "running as root, and there is no `postgres` user to run PostgreSQL as; "
            "create one or set DATABASE_URL"
        ) from exc
    return _RunAs(user="postgres", uid=entry.pw_uid, gid=entry.pw_gid)


def _reachable_by(path: Path, run_as: _RunAs) -> bool:
    """Can `run_as` traverse every directory above `path`?"""
    if run_as.user is None:
        return True
    for parent in path.resolve().parents:
        if not parent.exists():
            continue  # created by init() with the usual 0755
        status = parent.stat()
        if status.st_uid != run_as.uid and not status.st_mode & 0o001:  # no search bit
            return False
    return True


class EmbeddedPostgres:
    """initdb once, then start and stop a private server on 127.0.0.1 with a free port."""

    def __init__(self, data_dir: Path, *, port: int | None = None, durable: bool = True) -> None:
        self.durable = durable  # the test suite trades crash safety for speed
        self.run_as = _run_as()
        data_dir = data_dir.expanduser().absolute()
        if not _reachable_by(data_dir, self.run_as):
            log.info(
                "%s is not reachable by the postgres user; using %s", data_dir, ROOT_FALLBACK_DIR
            )
            data_dir = ROOT_FALLBACK_DIR
        self.data_dir = data_dir
        self.port = port or _free_port()

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self.run_as.user:
            kwargs = {"user": self.run_as.uid, "group": self.run_as.gid, "cwd": "/"}
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{what} failed: {(result.stderr or result.stdout).strip()}"
            )

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            return
        self.data_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        if self.run_as.user:
            os.chown(self.data_dir, self.run_as.uid, self.run_as.gid)
        self.data_dir.chmod(0o700)
        result = self._run(
            find_pg_bin("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        self._check(result, "initdb")

    def start(self) -> None:
        self.init()
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        result = self._run(
            find_pg_bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._check(result, "pg_ctl start")

    def stop(self) -> None:
        result = self._run(
            find_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
        )
        if result.returncode != 0:
            log.warning("pg_ctl stop: %s", result.stderr.strip())

    def create_database(self, name: str, *, template: str | None = None) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                template_sql = f' TEMPLATE "{template}"' if template else ""
                connection.execute(f'CREATE DATABASE "{name}"{template_sql}')
        return self.url(name)
