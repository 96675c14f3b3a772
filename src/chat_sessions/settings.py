"""Typed settings, read from the environment and `.env` (see `.env.example`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

MIB = 1024 * 1024
KIB = 1024
MIN_ADMIN_TOKEN_LENGTH = 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_path: str = "./data/sessions.db"
    database_url: str | None = None

    admin_token: SecretStr | None = None
    # Failed authentications a minute from one client address before they answer 429.
    # 0: no limit.
    auth_failures_per_minute: int = Field(default=30, ge=0)
    # Addresses or networks (comma-separated) of proxies whose X-Forwarded-For names the client.
    trusted_proxies: str = ""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = False
    # A request whose headers and body have not all arrived within this time is answered 408
    # and its connection closed (`serve` only).
    request_read_timeout_seconds: float = Field(default=30.0, gt=0)

    max_body_bytes: int = Field(default=1 * MIB, gt=0)
    max_message_bytes: int = Field(default=256 * KIB, gt=0)
    max_json_bytes: int = Field(default=64 * KIB, gt=0)

    # How long a process trusts a key it has resolved; a revocation made through another
    # process (or the CLI) takes effect within this time. 0: look every request up.
    api_key_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # How often a process writes api_keys.last_used_at of the keys it has seen (one UPDATE).
    api_key_usage_flush_seconds: float = Field(default=60.0, gt=0, le=3600)

    # An in_progress message that gets nothing for this long becomes `interrupted`.
    stream_idle_seconds: float = Field(default=120.0, gt=0)

    # Event streams (GET /v1/sessions/{id}/events): a `: ping` comment this often on a quiet
    # stream (proxies close silent connections); open streams per tenant and process (beyond:
    # 429); changes a stream may fall behind by while its client does not read, before it is
    # disconnected (the client resumes with Last-Event-ID).
    events_ping_seconds: float = Field(default=15.0, gt=0, le=15)
    max_streams_per_tenant: int = Field(default=1000, ge=1)
    events_backlog_limit: int = Field(default=1000, ge=1)

    # When set, `serve` applies every tenant's retention rules this often, in the background.
    cleanup_interval_seconds: float | None = Field(default=None, gt=0)

    # SQLite only. NORMAL in WAL mode loses nothing a crashed process committed; FULL also
    # survives a power cut, at one fsync per commit.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # PostgreSQL only: per process.
    db_pool_size: int = Field(default=10, ge=1)
    # Connections above the pool size are opened for a burst and closed when returned, so
    # under load that stays above the pool size they are opened and closed request after
    # request, each a new PostgreSQL process: at 16 concurrent requests on a pool of 10,
    # reads ran at half the speed and a p99 four times as long as with none (README,
    # "Pool sizing"). None by default: a request beyond the pool waits for a connection.
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30000, ge=0)

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("admin_token")
    @classmethod
    def _admin_token_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters long")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_are_addresses(cls, value: str) -> str:
        """Each entry an IP address or network: uvicorn would take a typo for a host name
        and silently trust nothing."""
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return ",".join(entries)

    @field_validator("cleanup_interval_seconds", mode="before")
    @classmethod
    def _empty_interval_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_url_is_unset(cls, value: object) -> object:
        return None if value in ("", None) else value

    @property
    def sqlalchemy_url(self) -> str:
        """The URL the engine connects to; `DATABASE_URL` wins over `DATABASE_PATH`."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        if self.database_path == ":memory:":
            return "sqlite://"
        return f"sqlite:///{Path(self.database_path).expanduser()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")


def normalize_database_url(url: str) -> str:
    """Accept the URL forms operators paste and point them at the drivers we ship.

    `postgres://` and `postgresql://` (and a `+psycopg` one) become `postgresql+asyncpg://`;
    SQLite URLs use the standard library driver, whatever driver they name.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")
