"""The HTTP server, the health check, and the `accessbot` command as an operator runs it."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import httpx
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.entry import collector_paused
from app.server import AccessbotWsgi, make_server
from tests.support.bot import REQUESTER, Bot
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.slack_requests import SIGNING_SECRET, SlackSender
from tests.support.wait import wait_until
from tests.test_workflow_loader import SHIPPED_ENV

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_healthz_answers_200_when_the_database_is_reachable(bot: Bot) -> None:
    assert httpx.get(bot.url + "/healthz").status_code == 200
    assert httpx.get(bot.url + "/elsewhere").status_code == 404


def test_healthz_answers_503_when_the_database_is_not() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    server = make_server(AccessbotWsgi(slack=None, engine=engine), host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
    finally:
        server.stop()
        thread.join(timeout=5)
    assert response.status_code == 503 and b"database unreachable" in response.content


def test_missing_settings_fail_at_start_with_one_line_naming_each(tmp_path: Path) -> None:
    result = run_cli("serve", env={}, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "accessbot: missing required settings: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET "
        "(set them in the environment or in .env)"
    ]


def test_settings_are_read_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-1\n")

    result = run_cli("serve", env={}, cwd=tmp_path)

    assert "missing required settings: SLACK_SIGNING_SECRET " in result.stderr


def test_serve_refuses_an_invalid_workflow(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "broken.py").write_text("workflow = Workflow(\n")

    result = run_cli(
        "serve", env={"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s"}, cwd=tmp_path
    )

    assert result.returncode == 1
    assert "workflows/broken.py:1: syntax error: '(' was never closed" in result.stderr
    assert "refusing to start" in result.stderr


def test_serve_answers_slack_and_stops_cleanly_on_sigterm(
    tmp_path: Path, database_url: str, fake_slack: FakeSlack
) -> None:
    port = _free_port()
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(REPO / "workflows"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        **SHIPPED_ENV,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: process.poll() is not None or _healthy(port),
            timeout=30,
            what="accessbot serve to answer /healthz",
        )
        assert process.poll() is None, process.communicate()[0]
        response = SlackSender(f"http://127.0.0.1:{port}").command(REQUESTER)
        assert response.status_code == 200
        view = fake_slack.wait_for("views.open")[0].args["view"]
        resources = view["blocks"][0]["element"]["option_groups"]
        assert [g["label"]["text"] for g in resources] == ["admin", "databases", "production"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "accessbot serving 3 resource(s)" in output
    # one line per fact a person needs, and no library chatter at INFO
    assert "INFO alembic" not in output and "INFO apscheduler" not in output, output
    assert f"{database_url.rsplit('/', 1)[1]}: schema at 0" in output
    assert "workflow production: support-console (approvers' channel C0123APPROVERS)" in output
    assert "PAGERDUTY_API_TOKEN is not set: on-call auto-approval is off" in output
    assert "Slack must call https://<this host's public name>/slack/events" in output
    password = make_url(database_url).password
    assert password and password not in output


def test_db_upgrade_without_database_url_runs_an_embedded_postgresql(tmp_path: Path) -> None:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="accessbot-embedded-"))
    root.chmod(0o755)  # when we are root, PostgreSQL runs as `postgres`, which must reach it
    data = root / "db"
    try:
        result = run_cli(
            "db", "upgrade", env={"EMBEDDED_DB_DIR": str(data)}, cwd=tmp_path, timeout=120
        )

        assert result.returncode == 0, result.stderr
        assert "database is at the latest revision" in result.stdout
        assert f"using an embedded PostgreSQL in {data}" in result.stderr
        assert (data / "PG_VERSION").is_file()
        assert not (data / "postmaster.pid").exists(), "the embedded server is stopped on exit"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False


def test_dotenv_also_provides_the_variables_workflows_read(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "p.py").write_text(
        "from datetime import timedelta\n"
        "from app.workflows import Env, Resource, Webhook, Workflow\n"
        "workflow = Workflow(name='p', approvers_channel='C0APPROVALS', approvers=['U0AAA'],\n"
        "    resources=[Resource(id='r', name='R', grant=Webhook(url='https://x',"
        " secret=Env('HOOK_SECRET')))])\n"
    )
    (tmp_path / ".env").write_text("HOOK_SECRET=from-dotenv  # a comment\n")

    result = run_cli("workflows", "check", env={}, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_embedded_data_directory_may_not_exist_yet() -> None:
    import shutil
    import tempfile

    from app.db.embedded import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="accessbot-embedded-"))
    root.chmod(0o755)
    wanted = root / "not" / "yet" / "postgres"
    try:
        server = EmbeddedPostgres(wanted)
    finally:
        shutil.rmtree(root)

    assert server.data_dir == wanted


def test_the_package_ships_every_package_of_app() -> None:
    """`pip install .` (what `scripts/serve` runs) installs the packages pyproject lists, and
    nothing else; the tests import from the checkout, so a package left out is missing only
    from installs. `accessbot doctor`, the quick start's third command, failed that way
    (`No module named 'app.doctor'`)."""
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "app").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"


def test_the_accessbot_command_imports_with_the_collector_paused() -> None:
    """`accessbot` (pyproject's script) imports the command with the garbage collector paused,
    then runs it with the collector on, with its arguments."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["accessbot"] == "app.entry:main"
    module, _, function = scripts["accessbot"].partition(":")
    # A stand-in for app.cli that notes whether the collector ran while it was imported.
    probe = (
        "import gc, importlib.abc, importlib.util, sys\n"
        "class StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'app.cli':\n"
        "            return importlib.util.spec_from_loader(name, self)\n"
        "    def create_module(self, spec):\n"
        "        return None\n"
        "    def exec_module(self, module):\n"
        "        during = gc.isenabled()\n"
        "        module.main = lambda argv=None: print(during, gc.isenabled(), argv)\n"
        "sys.meta_path.insert(0, StandIn())\n"
        f"from {module} import {function} as main\n"
        "main(['serve'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split(maxsplit=2) == ["False", "True", "['serve']\n"]


def test_nothing_is_collected_while_the_collector_is_paused_and_then_it_is_frozen() -> None:
    collections: list[str] = []

    def seen(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    gc.callbacks.append(seen)
    try:
        before = gc.get_freeze_count()
        with collector_paused():
            built = [[[]] for _ in range(100_000)]  # far past the first generation's 700
            assert not gc.isenabled()
        assert collections == []
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + 100_000
        del built
    finally:
        gc.callbacks.remove(seen)
        gc.unfreeze()
