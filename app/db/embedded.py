"""A PostgreSQL server of our own, for `accessbot serve` without DATABASE_URL and for the tests.

Uses the machine's `initdb` and `pg_ctl`. PostgreSQL refuses to run as root, so when we are root
the server runs as the `postgres` user, in a directory that user can reach.

No local user gets in without the password: the superuser `postgres` has a generated password
kept in `accessbot.password` (mode 0600) in the data directory (itself 0700), and every
connection, TCP on 127.0.0.1 or the Unix socket, must prove it with SCRAM-SHA-256. A cluster
made before this (with `trust`) is converted on its next start, with the server reachable
only through its socket in the 0700 directory while it is.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

ROOT_FALLBACK_DIR = Path("/var/lib/accessbot/postgres")
PASSWORD_FILE = "accessbot.password"
SCRAM_HBA = """\
# Written by accessbot: every connection proves the password (see accessbot.password).
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


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
    def password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        secret = quote(self.password, safe="")
        return f"postgresql+psycopg://postgres:{secret}@127.0.0.1:{self.port}/{database}"

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

    def _secure(self) -> None:
        """Give `postgres` a generated password and require it (SCRAM) of every connection.

        Runs while the cluster still trusts local users (new, or made by an older accessbot):
        the server is started with no TCP listener, its socket in the 0700 data directory."""
        if self.password_file.is_file():
            return
        password = secrets.token_urlsafe(32)
        self._pg_ctl_start(f"-p {self.port} -k {self.data_dir} -c listen_addresses=''")
        try:
            import psycopg
            from psycopg import sql

            with psycopg.connect(
                host=str(self.data_dir), port=self.port, user="postgres", dbname="postgres"
            ) as connection:
                connection.execute("SET password_encryption = 'scram-sha-256'")
                connection.execute(
                    sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password))
                )
                connection.commit()
        finally:
            self.stop()
        self._write_private(self.data_dir / "pg_hba.conf", SCRAM_HBA)
        self._write_private(self.password_file, password + "\n")

    def _write_private(self, path: Path, text: str) -> None:
        """A file only the server's user (and root) may read."""
        temporary = path.with_name(path.name + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if self.run_as.user:
            os.chown(temporary, self.run_as.uid, self.run_as.gid)
        temporary.chmod(0o600)
        temporary.replace(path)

    def start(self) -> None:
        self.init()
        self._secure()
        self._pg_ctl_start(f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1")

    def _pg_ctl_start(self, options: str) -> None:
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
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.password,
            dbname="postgres",
            autocommit=True,
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                template_sql = f' TEMPLATE "{template}"' if template else ""
                connection.execute(f'CREATE DATABASE "{name}"{template_sql}')
        return self.url(name)
