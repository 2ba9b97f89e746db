"""Run Serveline: `python run.py` (see `python run.py --help`)."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import nullcontext
from pathlib import Path

import msgspec
import uvloop
from aiohttp import web

from server.app import create_app, prepare_database
from server.config import Config, data_path, load
from server.keys import DEMO_PASSWORD
from server.logs import AccessLog, configure_logging
from store import backup
from store.embedded import DataDirInUse, embedded_postgres, running_dsn
from store.migrate import apply_migrations
from store.seed import ROLES

log = logging.getLogger("serveline")
# Connections the kernel queues before they are accepted (aiohttp's default is 128). After a
# restart every screen reconnects at once; past the queue a connect is dropped and retried by
# TCP a second later (docs/reliability.md). Linux caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096


def banner(config: Config, demo_password: str | None) -> str:
    url = f"http://{config.host}:{config.port}"
    if demo_password:
        password = f"{demo_password}   (shown only now: note it down)"
    elif config.demo_password:
        password = "from SERVELINE_DEMO_PASSWORD"
    else:
        password = "as printed when the demo was first seeded"
    logins = "\n".join(f"    {role}@demo.test" for role in ROLES)
    workers = f" ({config.workers} worker processes)" if config.workers > 1 else ""
    return (f"Serveline is running on {url}{workers}\n"
            f"  API:    {url}/api/v1   health: {url}/api/health   reference: {url}/api/v1/docs\n"
            f"  Demo restaurant logins:\n{logins}\n"
            f"  Demo password: {password}\n"
            f"Press Ctrl-C to stop.")


def serve(config: Config, quiet: bool = False) -> None:
    """One server process (a worker of several when `reuse_port` is set)."""
    app = create_app(config)
    web.run_app(app, host=config.host, port=config.port, reuse_port=config.reuse_port or None,
                access_log=logging.getLogger("serveline.access") if config.access_log else None,
                access_log_class=AccessLog,
                loop=uvloop.new_event_loop(), shutdown_timeout=10, backlog=LISTEN_BACKLOG,
                print=None if quiet else
                lambda _: print(banner(config, app.get(DEMO_PASSWORD)), flush=True))


def _wait_healthy(config: Config, workers: list[subprocess.Popen], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            return False
        try:
            with urllib.request.urlopen(f"http://{config.host}:{config.port}/api/health", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def supervise(config: Config, argv: list[str]) -> int:
    """Prepare the database once, then run `workers` processes on one port until told to stop."""
    demo_password = asyncio.run(prepare_database(config))
    command = [sys.executable, __file__, *argv, "--worker", "--workers", "1", "--reuse-port", "true",
               "--seed-demo", "false"]
    env = {**os.environ, "DATABASE_URL": config.database_url or ""}  # not on the command line
    workers = [subprocess.Popen(command, env=env) for _ in range(config.workers)]
    stopping = False

    def stop(*_: object) -> None:
        # Once only: a second SIGTERM would cut a worker's graceful shutdown short.
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if _wait_healthy(config, workers):
        print(banner(config, demo_password), flush=True)
    while not stopping and all(w.poll() is None for w in workers):
        time.sleep(0.2)
    crashed = not stopping  # a worker died on its own: stop the others and say so
    stop()
    codes = [w.wait() for w in workers]
    if crashed or any(code not in (0, -signal.SIGTERM) for code in codes):
        print(f"serveline: workers ended with {codes}" + (" (one stopped on its own)" if crashed else ""),
              file=sys.stderr)
        return 1
    return 0


def back_up_or_restore(config: Config, command: str, path: Path) -> int:
    """`run.py backup PATH` (also while a server runs on the data dir) or `run.py restore PATH`."""
    running = None if config.database_url else running_dsn(data_path(config))
    embedded = (nullcontext(config.database_url) if config.database_url
                else nullcontext(running) if running and command == "backup"
                else embedded_postgres(data_path(config)))
    try:
        with embedded as dsn:
            if command == "backup":
                backup.back_up(dsn, path)
                print(f"backed up to {path} ({path.stat().st_size:,} bytes)")
            else:
                backup.restore(dsn, path)
                print(f"restored from {path}; every restaurant has a new epoch, so screens and "
                      "iPads start from the restored state")
    except DataDirInUse as error:
        print(f"serveline: {error}. Stop it before restoring.", file=sys.stderr)
        return 2
    except backup.BackupFailed as error:
        print(f"serveline: {command} failed, nothing changed: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    config, args = load(argv)
    configure_logging(config.log_level, config.log_format)
    if args.command in ("backup", "restore"):
        if not args.path:
            print(f"serveline: {args.command} needs a file: python run.py {args.command} PATH",
                  file=sys.stderr)
            return 2
        return back_up_or_restore(config, args.command, Path(args.path).expanduser().resolve())
    embedded = (nullcontext(config.database_url) if config.database_url
                else embedded_postgres(data_path(config)))
    try:
        with embedded as dsn:
            config = msgspec.structs.replace(config, database_url=dsn)
            if args.migrate_only:
                applied = asyncio.run(apply_migrations(config.database_listen_url or dsn))
                print(f"applied migrations: {applied or 'none (up to date)'}")
                return 0
            if config.workers > 1:
                return supervise(config, argv)
            serve(config, quiet=args.worker)
    except DataDirInUse as error:
        print(f"serveline: {error}. Stop that one first, or pass --data-dir.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
