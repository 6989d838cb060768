"""The baseline for ack latency: a Bolt app that only acks, on accessbot's own server stack.

Same settings (read from the environment as `accessbot serve` reads them), same Slack client,
same Bolt listener executor and thread count, same WSGI app and waitress server. The listeners
ack and do nothing else, so the difference from accessbot is what accessbot does on the ack path.

    python -m benchmarks.bare_app     # with accessbot's environment (PORT, SLACK_*, DATABASE_URL)
"""

from __future__ import annotations

import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from app.config import Settings, load_settings
from app.db.session import make_engine
from app.runtime import make_slack_client
from app.server import AccessbotWsgi, make_server
from app.slack.ids import Ids


def build_app(settings: Settings) -> App:
    app = App(
        client=make_slack_client(settings),
        signing_secret=settings.slack_signing_secret,
        listener_executor=ThreadPoolExecutor(
            max_workers=settings.worker_threads, thread_name_prefix="listener"
        ),
        # As accessbot's App is set up (app/runtime.py): listeners answer in the request's
        # thread. Bolt's default polls for the ack every 10 ms, which would add 10 ms here.
        process_before_response=True,
    )

    @app.command("/access")
    def command(ack: Ack) -> None:
        ack()

    @app.view(str(Ids.REQUEST_MODAL))
    def submission(ack: Ack, body: dict[str, Any]) -> None:
        ack()

    return app


def main() -> None:
    settings = load_settings(Settings)
    logging.basicConfig(level=settings.log_level.upper())
    assert settings.database_url, "DATABASE_URL is needed for /healthz"
    engine = make_engine(settings.database_url, pool_size=1)
    server = make_server(
        AccessbotWsgi(slack=SlackRequestHandler(build_app(settings)), engine=engine),
        host=settings.host,
        port=settings.port,
        threads=settings.worker_threads,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
