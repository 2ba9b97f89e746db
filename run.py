"""Run Serveline: `python run.py` (see `python run.py --help`)."""
from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import nullcontext

import msgspec
import uvloop
from aiohttp import web

from server.app import create_app
from server.config import Config, data_path, load
from server.keys import DEMO_PASSWORD
from store.embedded import DataDirInUse, embedded_postgres
from store.migrate import apply_migrations
from store.seed import ROLES

log = logging.getLogger("serveline")


def banner(app: web.Application, config: Config) -> str:
    url = f"http://{config.host}:{config.port}"
    if DEMO_PASSWORD in app:
        password = f"{app[DEMO_PASSWORD]}   (shown only now: note it down)"
    elif config.demo_password:
        password = "from SERVELINE_DEMO_PASSWORD"
    else:
        password = "as printed when the demo was first seeded"
    logins = "\n".join(f"    {role}@demo.test" for role in ROLES)
    return (f"Serveline is running on {url}\n"
            f"  API:    {url}/api/v1   health: {url}/api/health\n"
            f"  Demo restaurant logins:\n{logins}\n"
            f"  Demo password: {password}\n"
            f"Press Ctrl-C to stop.")


def serve(config: Config) -> None:
    app = create_app(config)
    web.run_app(app, host=config.host, port=config.port,
                access_log=log if config.access_log else None,
                loop=uvloop.new_event_loop(), shutdown_timeout=5,
                print=lambda _: print(banner(app, config), flush=True))


def main(argv: list[str]) -> int:
    config, args = load(argv)
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    embedded = (nullcontext(config.database_url) if config.database_url
                else embedded_postgres(data_path(config)))
    try:
        with embedded as dsn:
            config = msgspec.structs.replace(config, database_url=dsn)
            if args.migrate_only:
                applied = asyncio.run(apply_migrations(dsn))
                print(f"applied migrations: {applied or 'none (up to date)'}")
                return 0
            serve(config)
    except DataDirInUse as error:
        print(f"serveline: {error}. Stop that one first, or pass --data-dir.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
