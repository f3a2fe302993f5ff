"""Where each open-loop command's time went (bench/bench_system.py), command by command:
- to appended: from its scheduled send to its events' row in PostgreSQL (`events.recorded_at`):
  the generator's lateness, the command API's queue and work, the append's statement;
- in the relay: from appended to handed to Kafka (the record's CreateTime, which the relay's
  producer sets as it builds the batch): the relay's window, its read and its send;
- to the read models: from handed to Kafka to seen in the read models (bench/open_loop.py's
  watch): the produce and its acknowledgement, the broker, the projector's fetch, its
  transaction and commit, the watch's notification and read.
The three add up to command -> visible, so the slowest 1 % can be taken apart; the components' own
stage histograms give means over fixed buckets, with the warm-up and the catching up in them.

The clocks are this machine's: the generator's perf_counter (taken to wall time with an offset read
once), PostgreSQL's clock_timestamp() and the relay's time.time(). On one machine they agree to
well under a millisecond; Kafka's timestamps are whole milliseconds. With the database elsewhere
the first two stages would carry the clocks' difference, so bench_system measures a local
PostgreSQL only. `split` is a pure function (unit-tested); the readers take the run's topic and
database.
"""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.open_loop import Latencies
from bench.open_loop_host import pct

Key = tuple[str, int]
STAGES = ("to appended", "in the relay", "to the read models")
SLOWEST = 0.01  # the tail taken apart: the slowest 1 % of command -> visible, as the goal's p99

RECORDED = """
SELECT session_id, version, extract(epoch FROM recorded_at)::float8 AS at
  FROM events WHERE tenant = $1 AND recorded_at >= to_timestamp($2)
"""


async def recorded_times(dsn: str, tenant: str, since: float) -> dict[Key, float]:
    """(session, version) -> when its event was recorded (epoch seconds), for events since `since`."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(RECORDED, tenant, since)
    finally:
        await conn.close()
    return {(row["session_id"], row["version"]): row["at"] for row in rows}


async def kafka_times(bootstrap: str, topic: str, since: float) -> dict[Key, float]:
    """(session, version) -> the record's CreateTime (epoch seconds), for the records of `topic` from
    `since` on (each partition read from the first offset at that time to its end)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        # a topic the consumer has not subscribed to has no cached metadata (as in bench_relay)
        partitions = [TopicPartition(topic, p) for p in sorted(await consumer._client._wait_on_metadata(topic))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.offsets_for_times({tp: int(since * 1000) for tp in partitions})
        todo = {}
        for tp in partitions:
            found = starts.get(tp)
            if found is not None and found.offset < ends[tp]:
                consumer.seek(tp, found.offset)
                todo[tp] = ends[tp]
        times: dict[Key, float] = {}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            if not batch:
                break  # the ends were read before: nothing more is coming
            for tp, records in batch.items():
                for record in records:
                    headers = dict(record.headers)  # named by eventstore/envelope.py (HEADER_NAMES)
                    times[(record.key.decode(), int(headers["session_version"]))] = record.timestamp / 1000
                if records[-1].offset + 1 >= todo[tp]:
                    del todo[tp]
        return times
    finally:
        await consumer.stop()


def split(lat: Latencies, recorded: dict[Key, float], handed: dict[Key, float]) -> dict:
    """Each stage's p50 and p99 (ms) over the measured commands found in both maps, and the slowest
    1 % of command -> visible taken apart (mean ms of each stage); {} when none matched."""
    rows = []
    for key, due, visible in zip(lat.visible_keys, lat.visible_due, lat.visible, strict=True):
        appended, sent = recorded.get(key), handed.get(key)
        if appended is None or sent is None:
            continue
        scheduled = due + lat.wall_offset
        rows.append((visible, (appended - scheduled, sent - appended, scheduled + visible - sent)))
    if not rows:
        return {}
    rows.sort(key=lambda row: row[0])
    slowest = rows[len(rows) - max(1, round(len(rows) * SLOWEST)) :]

    stages = {}
    for i, name in enumerate(STAGES):
        values = [parts[i] for _, parts in rows]
        stages[name] = {"p50": pct(values, 0.5), "p99": pct(values, 0.99)}
    return {
        "n": len(rows),
        "of": len(lat.visible),
        "stages": stages,
        "slowest": {
            "command -> visible": sum(v for v, _ in slowest) * 1000 / len(slowest),
            **{name: sum(parts[i] for _, parts in slowest) * 1000 / len(slowest) for i, name in enumerate(STAGES)},
        },
    }


def print_split(s: dict) -> None:
    if not s:
        return
    parts = "; ".join(f"{name} p50 {v['p50']:.1f} p99 {v['p99']:.1f}" for name, v in s["stages"].items())
    print(f"  per command (ms)       : {parts} ({s['n']} of {s['of']} commands matched)")
    slow = s["slowest"]
    print(
        f"  the slowest 1 %        : {slow['command -> visible']:.1f} ms on average = "
        + " + ".join(f"{slow[name]:.1f} {name}" for name in STAGES)
    )
