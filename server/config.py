"""Configuration: one frozen struct, read from flags, then `SERVELINE_*` env, then defaults.

`python run.py --help` lists every setting with its environment variable.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

ENV_PREFIX = "SERVELINE_"


class Config(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    reuse_port: bool = False
    data_dir: str = "var"
    database_url: str | None = None
    database_listen_url: str | None = None
    database_pgbouncer: bool = False
    database_read_urls: str = ""
    read_pool_max: int = 5
    read_max_lag_seconds: float = 10.0
    cache_url: str | None = None
    pool_min: int = 2
    pool_max: int = 10
    statement_timeout_ms: int = 10_000
    lock_timeout_ms: int = 5_000
    idle_in_transaction_timeout_ms: int = 30_000
    session_hours: float = 12.0
    cookie_secure: bool = False
    behind_proxy: bool = False
    cors_origins: str = ""
    max_body_bytes: int = 1_048_576
    body_read_seconds: float = 15.0
    demo_password: str | None = None
    seed_demo: bool = True
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    login_failures_before_delay: int = 3
    login_failure_limit: str = "10/15 minutes"
    login_address_limit: str = "50/15 minutes"
    rate_limit_api_key: str = "600/minute"
    rate_limit_device: str = "600/minute"
    rate_limit_session: str = "600/minute"
    rate_limit_address: str = "600/minute"
    rate_limit_busy_factor: float = 4.0
    ws_heartbeat_seconds: float = 10.0
    ws_send_buffer_bytes: int = 1_048_576
    event_retention_hours: float = 24.0
    ack_flush_seconds: float = 2.0
    presence_check_seconds: float = 10.0
    alert_check_seconds: float = 10.0
    alert_p95_ms: float = 200.0
    alert_pool_waiters: int = 1
    alert_event_lag_ms: float = 1000.0
    slow_query_ms: float = 100.0
    critical_query_ms: float = 500.0
    query_stats: bool = True
    metrics: bool = True
    metrics_token: str | None = None
    housekeeping_seconds: float = 600.0
    webhook_poll_seconds: float = 1.0
    webhook_timeout_seconds: float = 10.0
    webhook_retry_base_seconds: float = 10.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_give_up_hours: float = 24.0
    webhook_concurrency: int = 16
    webhook_allow_private: bool = False
    rollup_seconds: float = 300.0
    order_retention_days: int = 0
    access_log: bool = False
    log_level: str = "INFO"
    log_format: str = "auto"


# Help text per setting; env names are derived (`SERVELINE_<NAME>`), except the UNPREFIXED ones.
HELP: dict[str, str] = {
    "host": "address to listen on",
    "port": "port to listen on",
    "workers": "server processes sharing the port (SO_REUSEPORT); events reach every one",
    "reuse_port": "listen with SO_REUSEPORT (set for each worker when --workers > 1)",
    "data_dir": "folder for the embedded PostgreSQL data and the instance lock",
    "database_url": "PostgreSQL URL; without it an embedded PostgreSQL runs under the data dir",
    "database_listen_url": "PostgreSQL URL, direct (not through PgBouncer), for the LISTEN "
                           "connection and the migrations' session lock; unset: the database URL",
    "database_pgbouncer": "the database URL is a PgBouncer in transaction pooling mode: no "
                          "named prepared statements (see docs/deployment.md, PgBouncer)",
    "database_read_urls": "PostgreSQL URLs of streaming replicas, comma-separated, for the reads "
                          "that tolerate lag (menu, reports, availability, events feed; see "
                          "docs/deployment.md, Read replicas); unset: all reads on the primary",
    "read_pool_max": "largest number of connections to each read replica",
    "read_max_lag_seconds": "a replica further behind than this is skipped until it catches up",
    "cache_url": "redis://… to share the response cache between instances; without it, in memory",
    "pool_min": "smallest number of PostgreSQL connections kept open",
    "pool_max": "largest number of PostgreSQL connections",
    "statement_timeout_ms": "longest a single SQL statement may run",
    "lock_timeout_ms": "longest a statement may wait for a lock another holds (capped by the "
                       "statement timeout); past it the request answers 503 with Retry-After",
    "idle_in_transaction_timeout_ms": "longest a transaction may sit idle before PostgreSQL ends it",
    "session_hours": "how long a staff login lasts",
    "cookie_secure": "mark cookies Secure (set behind an HTTPS proxy; requests that came over "
                     "TLS get Secure cookies anyway)",
    "behind_proxy": "take the client address from X-Forwarded-For (the entry the proxy "
                    "appended: one trusted hop) and the scheme from X-Forwarded-Proto; "
                    "set it only when clients reach this port through that proxy alone",
    "cors_origins": "comma-separated exact origins (https://pos.example.com) whose pages may call "
                    "the API with a bearer token (CORS; never with cookies); empty: none",
    "max_body_bytes": "largest request body accepted (larger gets 413)",
    "body_read_seconds": "longest a request body may take to arrive (slower gets 408)",
    "demo_password": "password of the demo staff; generated and printed once if unset",
    "seed_demo": "seed the demo restaurant when the database has no restaurant",
    "argon2_time_cost": "argon2id passes per password hash",
    "argon2_memory_kib": "argon2id memory per password hash, in KiB",
    "login_failures_before_delay": "failed logins for one email before answers are slowed",
    "login_failure_limit": "failed logins allowed per email before 429 (limits syntax)",
    "login_address_limit": "failed logins allowed per client address before 429",
    "rate_limit_api_key": "requests per API key on the standard plan (limits syntax; off: none)",
    "rate_limit_device": "requests per device on the standard plan (limits syntax; off: none)",
    "rate_limit_session": "requests per staff sign-in on the standard plan (limits syntax; off: none)",
    "rate_limit_address": "requests without a credential (pages, pairing, sockets, sign-in) per address",
    "rate_limit_busy_factor": "the busy plan's limits as a multiple of the standard ones",
    "ws_heartbeat_seconds": "WebSocket ping interval; a peer silent for half of it more is closed",
    "ws_send_buffer_bytes": "outgoing bytes a socket may have queued before it is closed to resume",
    "event_retention_hours": "events stay replayable at least this long (the offline queue); "
                             "the log keeps whole months and drops a month once it ends this long ago",
    "ack_flush_seconds": "how often device receipts and presence are written",
    "presence_check_seconds": "how often expected devices are checked for being dark or behind",
    "alert_check_seconds": "how often alert rules are checked (late tickets, screens, this instance)",
    "alert_p95_ms": "alert when this instance's request p95 over the last minute is above this",
    "alert_pool_waiters": "alert when at least this many requests wait for a database connection",
    "alert_event_lag_ms": "alert when events reach sockets later than this after their write (p95)",
    "slow_query_ms": "log SQL statements taking at least this many milliseconds (a warning)",
    "critical_query_ms": "log SQL statements taking at least this many milliseconds as errors",
    "query_stats": "time SQL statements by pattern for /api/health/performance",
    "metrics": "time requests and serve Prometheus metrics at /metrics",
    "metrics_token": "bearer token /metrics requires (best set in the environment); unset: "
                     "/metrics answers loopback clients only",
    "housekeeping_seconds": "how often old idempotency keys and sessions are purged",
    "webhook_poll_seconds": "how often webhook deliveries are looked for (new events also wake it)",
    "webhook_timeout_seconds": "longest a webhook receiver may take to answer one delivery",
    "webhook_retry_base_seconds": "first webhook retry delay; doubles per failure, with jitter",
    "webhook_retry_max_seconds": "longest delay between two attempts of one webhook delivery",
    "webhook_give_up_hours": "a webhook delivery failing this long after its first try is given up",
    "webhook_concurrency": "webhook endpoints each process delivers to at once",
    "webhook_allow_private": "let webhooks reach loopback, private and link-local addresses "
                             "(for tests and closed networks only)",
    "rollup_seconds": "how often the daily report rollups are brought up to date",
    "order_retention_days": "delete closed orders this many days old once their day is in the "
                            "report rollups (0: keep them forever)",
    "access_log": "write an access log line per request",
    "log_level": "logging level",
    "log_format": "json, text, or auto (text on a terminal, JSON lines otherwise)",
}


# The names operators already use (DATABASE_LISTEN_URL beside DATABASE_URL).
UNPREFIXED = frozenset({"database_url", "database_listen_url", "database_read_urls", "cache_url"})
SPELLED = {"database_read_urls": "DATABASE_READ_URL"}  # beside DATABASE_URL, in the singular


def env_name(field: str) -> str:
    if field in SPELLED:
        return SPELLED[field]
    return field.upper() if field in UNPREFIXED else ENV_PREFIX + field.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in Config.__struct_fields__:
        raw = environ.get(env_name(field))
        if raw is not None:
            values[field] = raw
    return values


def _coerce(values: dict[str, Any]) -> Config:
    """Turn strings from env/flags into typed settings, with a clear message on a bad one."""
    defaults = Config()
    typed: dict[str, Any] = {}
    for field, raw in values.items():
        kind = type(getattr(defaults, field))
        if not isinstance(raw, str) or kind is str or getattr(defaults, field) is None:
            typed[field] = raw
            continue
        try:
            typed[field] = _parse_bool(raw) if kind is bool else kind(raw)
        except ValueError as error:
            raise SystemExit(f"serveline: bad setting {field} ({env_name(field)}): {error}") from None
    return Config(**typed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Serveline: a restaurant's live service in one process.",
        epilog="Every setting may also come from its environment variable (shown in brackets).",
    )
    defaults = Config()
    for field in Config.__struct_fields__:
        default = getattr(defaults, field)
        flag = "--" + field.replace("_", "-")
        text = f"{HELP[field]} [{env_name(field)}] (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=field, default=None, help=text + "; true/false",
                                metavar="BOOL")
        else:
            parser.add_argument(flag, dest=field, default=None, help=text)
    parser.add_argument("command", nargs="?", choices=("serve", "backup", "restore"),
                        default="serve",
                        help="serve (the default); backup PATH: write the database to PATH "
                             "(also while serving); restore PATH: replace the database with "
                             "a backup (with the server stopped)")
    parser.add_argument("path", nargs="?", help="the backup file, for backup and restore")
    parser.add_argument("--migrate-only", action="store_true",
                        help="apply database migrations and exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def load(argv: Sequence[str], environ: dict[str, str] | None = None) -> tuple[Config, argparse.Namespace]:
    """Settings from flags over env over defaults; also returns the parsed flags."""
    args = build_parser().parse_args(list(argv))
    values = _from_env(dict(os.environ if environ is None else environ))
    values.update({k: v for k, v in vars(args).items()
                   if k in Config.__struct_fields__ and v is not None})
    return _coerce(values), args


def data_path(config: Config) -> Path:
    return Path(config.data_dir).expanduser().resolve()
