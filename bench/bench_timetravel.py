"""Time-travel benchmark (issue 11): replay, blame and context of a long session against a short one,
read from the store, in one run; prints seconds and ratios.

A session of `--long` events (default 100,000) and one of `--short` (100) are written to a scratch
database: messages, state patches by two agents, tool calls and model calls, each call referencing
the previous call, its answer and the new message (so a context rebuild walks the whole chain).
Then, for each session, from the event store as the CLI and the query API read it: replay to its
middle and to its end, blame at its end, and the context of its last model call.

Replay and blame start at the nearest fold snapshot (eventstore/fold_snapshots.py), as the CLI and
the query API do; the snapshots are written first by the code the projector runs (write_due, every
`--every` events, default the projector's AGENTLOG_PROJECTOR_SNAPSHOT_EVERY, 100), and that catch-up is
timed on its own; so is the writer's step in steady state (K more events, one more snapshot)
carried on from the point it last wrote, against a writer that reads the chain of knowledge parts
back first (what every step cost before the writer kept its point). Context,
the conversation, the state with what the agents knew (the query API's /state) and diff start at
the nearest snapshot too, reading its chain of knowledge parts (eventstore/knowledge.py); their
answer is as large as what it shows: here, each call references the previous one, so the last
call's request is the whole conversation.

The middle and the end of the long session fall on snapshots; "the end - 1" is the worst case,
--every - 1 events past one.

Goal (issue 11): replay to any version under 100 ms and within 3x of the short session; blame
under 1 s.

Run: AGENTLOG_DATABASE_URL=postgresql://agentlog@127.0.0.1:54329/agentlog python -m bench.bench_timetravel
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

from bench.scratch import scratch_database
from eventstore import db
from eventstore import events as ev
from eventstore.diff_store import diff_on_store
from eventstore.fold_snapshots import fold_to, write_due
from eventstore.large_reads import gc_paused
from eventstore.registry import to_stored
from eventstore.settings import Settings
from eventstore.store import EventStore
from projections.settings import ProjectorSettings

TENANT = "bench"
CHUNK = 1000


def session_events(n: int) -> list[ev.Event]:
    events: list[ev.Event] = [ev.SessionStarted(workflow="bench", agents=["a", "b"], allow_shared_sections=True)]
    k = 0
    previous: str | None = None
    while len(events) < n:
        k += 1
        events.append(ev.MessageAdded(role="user", content=f"turn {k}"))
        events.append(ev.StateSectionUpdated(agent="ab"[k % 2], section="notes", changes={f"k{k % 50}": k}))
        events.append(ev.ToolCallRequested(call_id=f"t{k}", tool="search", arguments={"q": k}, agent="a"))
        events.append(ev.ToolCallCompleted(call_id=f"t{k}", result={"hits": k % 7}, duration_ms=5))
        items: list[dict[str, object]] = (
            [{"ref": "call", "call_id": previous}, {"ref": "response", "call_id": previous}] if previous else []
        )
        items.append({"ref": "message", "index": k - 1})
        request = ev.ModelRequest(
            messages=items, tools=[{"name": "search"}] if not previous else [], tools_from=previous
        )
        events.append(
            ev.ModelCallRecorded(
                call_id=f"m{k}", agent="a", model="m", request=request, response=ev.ModelResponse(content=f"a{k}")
            )
        )
        previous = f"m{k}"
    return events[:n]


async def write(store: EventStore, session_id: str, n: int) -> None:
    events = [to_stored(e) for e in session_events(n)]
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        await store.append(TENANT, session_id, chunk, expected_version=start)


async def timed(work: Callable[[], Awaitable[object]], repeat: int = 3) -> tuple[float, float]:
    """The best of `repeat` runs after one not counted, and this process's CPU per run (less
    sensitive to a shared machine's load than the wall clock; the Postgres side is not in it),
    in seconds; a full garbage collection first, so that none falls due inside."""
    await work()
    gc.collect()
    best = float("inf")
    cpu = time.process_time()
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        best = min(best, time.perf_counter() - started)
    return best, (time.process_time() - cpu) / repeat


async def measure(store: EventStore, session_id: str, n: int, repeat: int) -> dict[str, tuple[float, float]]:
    async def replay_to(version: int) -> None:
        await fold_to(store, TENANT, session_id, version, with_blame=False)

    async def blame_at(version: int) -> None:
        (await fold_to(store, TENANT, session_id, version)).blame.result()

    async def knowing(version: int):
        point = await fold_to(store, TENANT, session_id, version, with_blame=False, with_knowledge=True)
        assert point.knowledge is not None
        return point.knowledge

    # as the query API and the CLI run them: the garbage collector paused (eventstore/large_reads.py)
    async def context_at(version: int) -> None:
        with gc_paused():
            (await knowing(version)).index.context_of(None, version).to_json()

    async def conversation_at(version: int) -> None:
        with gc_paused():
            (await knowing(version)).transcript(model_calls=False).to_json()

    async def state_at(version: int) -> None:  # GET /state?at_version=N: everything
        with gc_paused():
            (await knowing(version)).transcript().to_json()

    async def diff_to(a: int, b: int) -> None:
        (await diff_on_store(store, TENANT, (session_id, a), (session_id, b))).to_json()

    return {
        "replay to the middle - 1": await timed(lambda: replay_to(n // 2 - 1), repeat),
        "replay to the middle": await timed(lambda: replay_to(n // 2), repeat),
        "replay to the end": await timed(lambda: replay_to(n), repeat),
        "replay to the end - 1": await timed(lambda: replay_to(n - 1), repeat),
        "blame at the end": await timed(lambda: blame_at(n), repeat),
        "blame at the end - 1": await timed(lambda: blame_at(n - 1), repeat),
        "context of the last call": await timed(lambda: context_at(n), repeat),
        "context at the end - 1": await timed(lambda: context_at(n - 1), repeat),
        "conversation at the end - 1": await timed(lambda: conversation_at(n - 1), repeat),
        "state at the end - 1 (API)": await timed(lambda: state_at(n - 1), repeat),
        "diff end - 10 -> end - 1": await timed(lambda: diff_to(n - 10, n - 1), repeat),
    }


async def write_snapshots(store: EventStore, long_n: int, short_n: int, every: int) -> None:
    """The catch-up (all snapshots but the long session's last), then the writer's step to the
    last one carried on from the point it kept, and again by a fresh writer (the chain read back).
    The writer is a store of its own, dropped afterwards: the reads are measured without the
    point it keeps (the projector's process holds it, not the query API's)."""
    writer = EventStore(store.pool)
    started = time.perf_counter()
    count = await write_due(writer, TENANT, "long", long_n - every, every)
    count += await write_due(writer, TENANT, "short", short_n, every)
    print(f"wrote {count} fold snapshots (every {every} events) in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    await write_due(writer, TENANT, "long", long_n, every)
    kept = time.perf_counter() - started
    await store.pool.execute(
        "DELETE FROM fold_snapshots_v1 WHERE session_id = 'long' AND version = $1", long_n // every * every
    )
    started = time.perf_counter()
    await write_due(EventStore(store.pool), TENANT, "long", long_n, every)
    fresh = time.perf_counter() - started
    print(
        f"the writer's step ({every} more events, 1 snapshot): {kept * 1000:.1f} ms carried on, "
        f"{fresh * 1000:.1f} ms reading the chain of parts back first"
    )
    del writer
    gc.collect()


async def main(long_n: int, short_n: int, repeat: int, every: int) -> None:
    admin = Settings().dsn()
    async with scratch_database(admin) as dsn:
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        try:
            store = EventStore(pool)
            started = time.perf_counter()
            await write(store, "long", long_n)
            await write(store, "short", short_n)
            print(f"wrote {long_n} + {short_n} events in {time.perf_counter() - started:.1f} s")
            if every:
                await write_snapshots(store, long_n, short_n, every)
            sizes = await pool.fetchrow(
                "SELECT pg_total_relation_size('events') AS events, pg_total_relation_size('fold_snapshots_v1') AS snaps"
            )
            print(f"on disk: events {sizes['events'] / 2**20:.0f} MiB, fold snapshots {sizes['snaps'] / 2**20:.0f} MiB")
            short = await measure(store, "short", short_n, repeat)
            long = await measure(store, "long", long_n, repeat)
        finally:
            await pool.close()
    print(
        f"{'operation':<28} {short_n:>10} ev {long_n:>10} ev {'ratio':>6}   cpu: {'short':>8} {'long':>10} {'ratio':>6}"
    )
    for name in short:
        (s_wall, s_cpu), (l_wall, l_cpu) = short[name], long[name]
        print(
            f"{name:<28} {s_wall * 1000:>10.1f} ms {l_wall * 1000:>10.1f} ms {l_wall / s_wall:>6.1f}   "
            f"{s_cpu * 1000:>8.1f} ms {l_cpu * 1000:>7.1f} ms {l_cpu / s_cpu:>6.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=100_000)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per operation")
    parser.add_argument(
        "--every",
        type=int,
        default=ProjectorSettings.model_fields["snapshot_every"].default,
        help="a fold snapshot every N events (0: none; default: the projector's)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.long, args.short, args.repeat, args.every))
