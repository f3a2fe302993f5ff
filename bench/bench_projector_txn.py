"""The projector's transaction shape, A/B in one run: its fixed cost per transaction and its cost
per event, process CPU and that of its Postgres backend, at a given number of events per transaction.

- before: pool connection reset on release (asyncpg's default reset query), a savepoint around the
  fast path, every statement run as an executemany;
- after: as the projector runs now (no reset query, no savepoint, the BULK forms: the timeline's
  insert over unnest(), the summaries' MERGE in rounds).

Each transaction is what a projector batch does with `--events` MessageAdded events over 200
sessions (a stand-in SELECT for the positions' compare-and-set). Rounds alternate before/after so
a busy machine hurts both alike. Run from the project root: `python -m bench.bench_projector_txn`.
"""

from __future__ import annotations

import argparse
import datetime
import time
import uuid

import asyncpg
import uvloop

from agentlog.stack.stack import Stack
from bench.process_cpu import cpu_seconds
from bench.scratch import scratch_database
from eventstore import db
from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from projections.projector.applier import BatchApplier
from projections.read_models.catalog import PROJECTIONS
from projections.read_models.projection import BULK

TYPE, SCHEMA_VERSION, DATA = to_stored(ev.MessageAdded(role="assistant", content="x" * 200, agent="bench"))
SESSIONS = 200


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The projector's pool reset (projections/projector/runner.py): none."""


class Shapes:
    def __init__(self, pools: dict[str, asyncpg.Pool], events: int) -> None:
        self.pools, self.events = pools, events
        self.versions: dict[tuple[str, str], int] = {}
        self.position = 0
        self.bulk = dict(BULK)

    def batch(self, shape: str) -> list[RecordedEvent]:
        out = []
        for _ in range(self.events):
            self.position += 1
            session = f"s{self.position % SESSIONS}"
            version = self.versions[(shape, session)] = self.versions.get((shape, session), 0) + 1
            out.append(
                RecordedEvent(
                    position=self.position,
                    session_id=session,
                    version=version,
                    event_id=uuid.uuid4(),
                    type=TYPE,
                    schema_version=SCHEMA_VERSION,
                    data=DATA,
                    tenant="bench",
                    recorded_at=datetime.datetime.now(datetime.UTC),
                    metadata={},
                )
            )
        return out

    async def run(self, shape: str, transactions: int) -> tuple[float, float]:
        """(process, backend) CPU ms per event."""
        pool = self.pools[shape]
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
        applier = BatchApplier(PROJECTIONS, f"bench-{shape}", 3)
        BULK.clear()
        if shape == "after":
            BULK.update(self.bulk)
        try:
            own, pg = time.process_time(), cpu_seconds(backend) or 0.0
            for _ in range(transactions):
                records = self.batch(shape)
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT 1")  # stands for the positions' compare-and-set
                    await applier.apply(conn, records, savepoint=shape == "before")
            n = transactions * self.events
            return (time.process_time() - own) * 1000 / n, ((cpu_seconds(backend) or 0.0) - pg) * 1000 / n
        finally:
            BULK.clear()
            BULK.update(self.bulk)


async def run(args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    async with scratch_database(Stack.from_settings().database_url()) as dsn:
        pools = {
            "before": await db.create_pool(dsn, min_size=1, max_size=1),
            "after": await db.create_pool(dsn, min_size=1, max_size=1, reset=_keep_session),
        }
        try:
            shapes = Shapes(pools, args.events)
            for shape in pools:  # warm-up: plans, caches
                await shapes.run(shape, 100)
            results: dict[str, list[tuple[float, float]]] = {shape: [] for shape in pools}
            for _ in range(args.rounds):
                for shape in pools:
                    results[shape].append(await shapes.run(shape, args.transactions))
            return results
        finally:
            for pool in pools.values():
                await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=18, help="events per transaction")
    parser.add_argument("--transactions", type=int, default=300, help="per round and shape")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    for shape, rounds in uvloop.run(run(args)).items():
        own = sorted(r[0] for r in rounds)[len(rounds) // 2]
        pg = sorted(r[1] for r in rounds)[len(rounds) // 2]
        print(
            f"{shape:6s} {args.events} events/transaction: process {own:.3f} + backend {pg:.3f} = "
            f"{own + pg:.3f} ms CPU per event (median of {len(rounds)} rounds)"
        )


if __name__ == "__main__":
    main()
