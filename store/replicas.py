"""Read replicas: the reads that tolerate lag run on a streaming replica, the rest on the primary.

`Reads.run(compute, min_seq)` runs `compute(pool) -> (value, seq)` on a healthy replica and
answers from the primary instead when no replica is usable, when the replica's answer reflects a
seq below `min_seq` (the client's `X-Serveline-Min-Seq`: read-your-writes), or when the replica
fails (a connection error marks it down until the probe reaches it again). A probe every second
measures each replica's lag; one further behind than `max_lag` is skipped until it catches up.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

from store.pool import DATABASE_ERRORS

log = logging.getLogger("serveline.replicas")

T = TypeVar("T")
Compute = Callable[[asyncpg.Pool], Awaitable[tuple[T, int]]]  # (the answer, the seq it reflects)
PROBE_SECONDS = 1.0

PRIMARY_LSN = "SELECT pg_current_wal_lsn()"
# On the replica: has it replayed `$1` (the primary's WAL position read just before), and how old
# is the last transaction it replayed.
REPLICA_STATE = """
SELECT pg_is_in_recovery() AS in_recovery,
       coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS caught_up,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age"""

# A replica's connection (not its query) failed: it is taken as down until a probe reaches it.
CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                     asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                     asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


class Replica:
    """One replica: its pool, what the last probe found, and how many reads it served."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        parts = urlsplit(url)
        self.name = f"{parts.hostname or 'local'}:{parts.port or 5432}{parts.path}"  # no password
        self.pool = pool
        self.up = False  # reachable, as of the last probe or read
        self.lag_seconds: float | None = None  # None: not measured yet (or down)
        self.behind_since: float | None = None  # monotonic time a probe first saw it behind
        self.served = 0
        self.failed = 0  # reads that failed here and were answered by the primary

    def usable(self, max_lag: float) -> bool:
        return self.up and self.lag_seconds is not None and self.lag_seconds <= max_lag


class Reads:
    """Where the reads that tolerate lag run; with no replica, simply the primary."""

    def __init__(self, primary: asyncpg.Pool, replicas: list[Replica], max_lag: float) -> None:
        self.primary, self.replicas, self.max_lag = primary, replicas, max_lag
        self.on_primary: Counter[str] = Counter()  # why: no_replica, min_seq, replica_error
        self._next = 0

    @property
    def served_by_replicas(self) -> int:
        return sum(replica.served for replica in self.replicas)

    def _pick(self) -> Replica | None:
        """The next usable replica, round robin."""
        for step in range(len(self.replicas)):
            replica = self.replicas[(self._next + step) % len(self.replicas)]
            if replica.usable(self.max_lag):
                self._next = (self._next + step + 1) % len(self.replicas)
                return replica
        return None

    async def run(self, compute: Compute[T], min_seq: int = 0) -> tuple[T, int]:
        """`compute` on a replica when one is usable and its answer is at least `min_seq` fresh;
        on the primary otherwise. A replica's failure is never the caller's."""
        if not self.replicas:
            return await compute(self.primary)
        replica = self._pick()
        if replica is None:
            self.on_primary["no_replica"] += 1
            return await compute(self.primary)
        try:
            value, seq = await compute(replica.pool)
        except DATABASE_ERRORS as error:
            # A read that writes (a stale report rollup) is refused as read-only; a query may be
            # cancelled by a conflict with recovery. Either way the primary answers.
            replica.failed += 1
            if isinstance(error, CONNECTION_ERRORS):
                replica.up, replica.lag_seconds = False, None
                log.warning("replica %s failed (%s); reading from the primary until it is back",
                            replica.name, error)
            self.on_primary["replica_error"] += 1
            return await compute(self.primary)
        if seq < min_seq:
            self.on_primary["min_seq"] += 1
            return await compute(self.primary)
        replica.served += 1
        return value, seq

    # The probe --------------------------------------------------------------

    async def probe(self) -> None:
        """Measure every replica's lag once (see `probe_one`)."""
        try:
            target = await self.primary.fetchval(PRIMARY_LSN)
        except DATABASE_ERRORS:
            target = None  # the primary is away: judge replicas by their replay age alone
        await asyncio.gather(*(self.probe_one(replica, target) for replica in self.replicas))

    async def probe_one(self, replica: Replica, target: str | None) -> None:
        """Lag is 0 once the replica has replayed the primary's WAL position read just before
        (an idle primary writes nothing, so an old last replay is no lag). Behind it, the lag is
        the shorter of the age of the last replayed transaction and how long probes have seen it
        behind: the first overstates after an idle spell, the second understates by a probe."""
        now = time.monotonic()
        try:
            row = await asyncio.wait_for(replica.pool.fetchrow(REPLICA_STATE, target or "0/0"),
                                         PROBE_SECONDS * 2)
        except (TimeoutError, *DATABASE_ERRORS) as error:
            if replica.up:
                log.warning("replica %s is down (%s)", replica.name, error)
            replica.up, replica.lag_seconds, replica.behind_since = False, None, None
            return
        if not replica.up:
            log.info("replica %s is reachable", replica.name)
        replica.up = True
        if not row["in_recovery"]:
            replica.lag_seconds = 0.0  # promoted: it is a primary now, nothing to replay
            replica.behind_since = None
        elif row["caught_up"] and target is not None:
            replica.lag_seconds, replica.behind_since = 0.0, None
        else:
            replica.behind_since = replica.behind_since or now
            age = row["replay_age"] if row["replay_age"] is not None else float("inf")
            replica.lag_seconds = round(min(age, now - replica.behind_since) if target else age, 3)

    async def probing(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(PROBE_SECONDS)

    async def close(self) -> None:
        await asyncio.gather(*(replica.pool.close() for replica in self.replicas))


def read_urls(setting: str) -> list[str]:
    """The replica URLs of `database_read_urls` (comma-separated)."""
    return [url.strip() for url in setting.split(",") if url.strip()]
