"""The embedded PostgreSQL lets nobody in without its generated password: no `trust`, not on
TCP, not on its socket; the password sits in a 0600 file in a 0700 directory."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from app.db.embedded import EmbeddedPostgres, find_pg_bin
from tests.support.postgres import SuitePostgres


def server_of(postgres: SuitePostgres) -> EmbeddedPostgres:
    if postgres._embedded is None:
        pytest.skip("TEST_DATABASE_URL: the suite runs on a server of yours")
    return postgres._embedded


def hba_rules(data_dir: Path) -> list[list[str]]:
    lines = (data_dir / "pg_hba.conf").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def test_the_password_file_is_private_and_every_rule_wants_scram(
    postgres: SuitePostgres,
) -> None:
    server = server_of(postgres)
    mode = stat.S_IMODE(server.password_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    rules = hba_rules(server.data_dir)
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules), rules
    assert len(server.password) >= 32


@pytest.mark.parametrize("password", [None, "guess"])
def test_tcp_without_the_password_is_refused(postgres: SuitePostgres, password: str | None) -> None:
    server = server_of(postgres)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(
            host="127.0.0.1",
            port=server.port,
            user="postgres",
            dbname="postgres",
            password=password or "",
            connect_timeout=5,
        )


def test_the_socket_wants_the_password_too(postgres: SuitePostgres) -> None:
    server = server_of(postgres)
    # as the server's own user (root reaches the socket too): psql with no password
    command = [find_pg_bin("psql"), "-h", str(server.data_dir), "-p", str(server.port)]
    command += ["-U", "postgres", "-w", "-c", "SELECT 1", "postgres"]
    result = server._run(*command)
    assert result.returncode != 0
    assert "password" in result.stderr


def test_the_password_lets_the_bot_in_with_scram(postgres: SuitePostgres) -> None:
    server = server_of(postgres)
    with psycopg.connect(
        host="127.0.0.1",
        port=server.port,
        user="postgres",
        dbname="postgres",
        password=server.password,
    ) as connection:
        stored = connection.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'"
        ).fetchone()
    assert stored and str(stored[0]).startswith("SCRAM-SHA-256$")


def test_a_cluster_made_with_trust_is_secured_on_its_next_start() -> None:
    root = Path(tempfile.mkdtemp(prefix="accessbot-trust-pg-"))
    root.chmod(0o755)  # the postgres user must reach it when we are root
    data = root / "data"
    server = EmbeddedPostgres(data, durable=False)
    assert server.data_dir == data
    server.init()  # what an older accessbot left: trust everywhere, no password file
    assert any(rule[-1] == "trust" for rule in hba_rules(data))
    assert not server.password_file.exists()
    try:
        server.start()
        assert all(rule[-1] == "scram-sha-256" for rule in hba_rules(data))
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", password="")
        url = server.create_database("accessbot")
        assert url.startswith("postgresql+psycopg://postgres:")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
