"""Runtime settings, read from the environment and from `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """Settings are missing or malformed; the message is one line meant for a human."""


class DatabaseSettings(BaseSettings):
    """What the database commands need; `accessbot db upgrade` reads only these."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str | None = None
    # The owner of the tables runs the migrations when set; the bot then runs as DATABASE_URL's
    # role, which cannot alter, empty or rewrite the audit log (see README, Security).
    migration_database_url: str | None = None
    embedded_db_dir: Path = Path(".accessbot/postgres")

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str | None) -> str | None:
        """Accept the `postgres://` URLs that Heroku-style platforms hand out."""
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value


class WorkflowSettings(BaseSettings):
    """What the policy commands need: `accessbot workflows check` and `simulate`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    workflows_dir: Path = Path("./workflows")
    # With a token, `workflows check` also asks Slack whether approvers' channels are closed.
    slack_bot_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"


class Settings(DatabaseSettings):
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"

    workflows_dir: Path = Path("./workflows")
    # all: one process answers Slack and does the work. web: answer Slack only, storing the
    # work for workers; worker: do the work (grants, revokes, messages, stored jobs), serving
    # only health and metrics. Run one or more of each against one database.
    process_role: Literal["all", "web", "worker"] = "all"
    port: int = 3000
    host: str = "0.0.0.0"
    # /metrics (with /healthz and /readyz) on a listener of its own: Socket Mode's only HTTP
    # listener; over HTTP, keeps metrics off the port Slack calls.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Socket Mode pings Slack this often; a connection silent for about four pings is replaced.
    socket_mode_ping_seconds: float = Field(default=5.0, gt=0, le=60)

    pagerduty_api_token: str | None = None
    pagerduty_api_url: str = "https://api.pagerduty.com"
    pagerduty_oncall_cache_seconds: float = Field(default=30.0, ge=0, le=60)

    approvers_cache_seconds: float = Field(default=30.0, ge=0, le=600)
    reminder_minutes: float = Field(default=10.0, gt=0)
    reminder_min_grant_minutes: float = Field(default=30.0, ge=0)
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    worker_threads: int = Field(default=16, ge=2)
    after_ack_threads: int = Field(default=16, ge=1)  # the work listeners do after Slack's ack
    # Grant and revoke calls in flight at once in this process, and at most to one target
    # (a webhook host, or a strategy's in_flight_key); 0: half of grant_workers.
    grant_workers: int = Field(default=64, ge=1, le=512)
    grant_target_max_in_flight: int = Field(default=0, ge=0)
    hook_deadline_seconds: float = Field(default=10.0, gt=0)  # a workflow hook's wall clock
    slack_sender_threads: int = Field(default=8, ge=1, le=64)
    # Multiplies the pace at which the outbox is sent (Slack's published limits at 1.0).
    slack_rate_scale: float = Field(default=1.0, gt=0)
    # How long a grant's lease outlives its strategy call: after a crash, another instance
    # takes the grant over once the call's deadline plus this margin has passed.
    lease_margin_seconds: float = Field(default=30.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)  # for work in flight at SIGTERM
    log_level: str = "INFO"
    # text: one line per record for a terminal; json: one JSON object per line for a collector.
    log_format: Literal["text", "json"] = "text"
    # The largest request body accepted from Slack; larger ones get 413 unread.
    max_body_bytes: int = Field(default=512 * 1024, ge=16 * 1024, le=16 * 1024 * 1024)
    # Requests one person may have waiting for a decision at once, and may file per hour.
    max_open_requests: int = Field(default=5, ge=1)
    max_requests_per_hour: int = Field(default=20, ge=1)

    @field_validator("pagerduty_api_url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(
                "must start with https:// (the pagerduty client refuses anything else)"
            )
        return value.rstrip("/")

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _required(self) -> Settings:
        missing = []
        if not self.slack_bot_token:
            missing.append("SLACK_BOT_TOKEN")
        if not self.slack_app_token and not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")  # Socket Mode does without it
        if missing:
            raise ValueError("missing:" + ",".join(missing))
        return self

    @property
    def bot_token(self) -> str:
        assert self.slack_bot_token, "checked by _required"
        return self.slack_bot_token

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)


S = TypeVar("S", bound=DatabaseSettings)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings, turning pydantic's report into one line that names each missing variable."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        missing: list[str] = []
        invalid: list[str] = []
        for error in exc.errors():
            if "missing:" in str(error.get("msg", "")):
                missing.extend(str(error["msg"]).split("missing:", 1)[1].split(","))
            else:
                name = str(error["loc"][0]).upper() if error["loc"] else "settings"
                invalid.append(f"{name} ({error['msg']})")
        parts = []
        if missing:
            parts.append("missing required settings: " + ", ".join(missing))
        if invalid:
            parts.append("invalid settings: " + "; ".join(invalid))
        raise SettingsError(
            "; ".join(parts) + " (set them in the environment or in .env)"
        ) from None
