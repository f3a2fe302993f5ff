"""Settings of the outbox relay (AGENTLOG_RELAY_<FIELD>), with the defaults documented here.

Nothing here connects to anything; `run_relay` receives these next to the shared `Settings`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


class RelaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLOG_RELAY_", extra="ignore")

    batch_size: int = Field(default=1000, ge=1, le=50_000, description="outbox rows per read and Kafka batch")
    max_in_flight_batches: int = Field(
        default=3,
        ge=1,
        le=16,
        description="batches sent and awaiting acks at once; the next is read while earlier ones fly",
    )
    # 40 ms (relay) + 5 ms (projector) instead of 15 + 25: the same bound on what batching adds, but the
    # broker's and the relay's CPU are per Kafka request (one produce, and the projector's one fetch, per
    # relay batch: about 2 ms of broker CPU per batch whatever its size), so the gathering is done where
    # it makes the requests fewer; the projector's transactions still take one relay batch each.
    batch_window_ms: int = Field(
        default=40,
        ge=0,
        le=10_000,
        description="under load (the previous read found several rows), a read waits until this long after that "
        "read began, so rows gather into larger batches (at most this much added latency); after a read of "
        "nothing or one row the next row is read at once; 0 = read as soon as notified",
    )
    batch_window_rows: int = Field(
        default=200,
        ge=1,
        description="the gathering window also ends once this many appends notified since the previous read "
        "(each appending transaction notifies once, so at least this many rows wait); under a sustained load "
        "the relay stops listening (outbox/drain.py) and windows end by time only",
    )
    poll_interval_ms: int = Field(
        default=500, ge=10, description="fallback poll when no NOTIFY arrives (lost or not sent)"
    )
    standby_retry_ms: int = Field(default=1000, ge=50, description="how often a standby tries the lock")
    heartbeat_ms: int = Field(default=1000, ge=50, description="leader lock-connection check period")
    lock_check_timeout_ms: int = Field(
        default=5000,
        ge=100,
        description="a lock-connection check slower than this counts as a lost lock (the leader steps down)",
    )
    # Measured in bench_system (whole system on 2 cores, whole and alone interleaved): the whole
    # system took 0.68-0.83 of the command API alone's commands/s at nice 0 (median 0.71, 7 runs),
    # 0.69-0.91 at 10 (median 0.82, 17 runs).
    niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority of the relay process (Linux nice): background work, its batching absorbs "
        "waits, so on shared cores the command API goes first; 0 = as the APIs",
    )
    idle_cpu: bool = Field(
        default=True,
        description="where the machine allows it (a cgroup with cpu.idle, agentlog/stack/background.py), run on CPU "
        "time the APIs and PostgreSQL leave idle, the relay's PostgreSQL backends too when they are on this machine: "
        "preempted at once when they want a core, not after a slice; false = its nice alone",
    )
    metrics_port: int | None = Field(default=None, description="serve /metrics on this port if set")
    metrics_host: str = Field(
        default="127.0.0.1",
        description="interface /metrics binds to; it has no auth, so loopback unless set (0.0.0.0 = all)",
    )
    metrics_refresh_ms: int = Field(default=2000, ge=100, description="backlog gauge refresh period")
    # Producer tuning: idempotence and acks=all are not settings, they are the contract.
    linger_ms: int = Field(
        default=5,
        ge=0,
        description="producer linger; the relay hands over closed per-partition batches, sent at once",
    )
    max_batch_bytes: int = Field(default=512 * 1024, ge=16 * 1024, description="aiokafka max_batch_size")
    max_request_bytes: int = Field(default=1_048_576, ge=1024, description="largest record accepted")
    request_timeout_ms: int = Field(default=30_000, ge=1000)
    delivery_timeout_ms: int = Field(
        default=30_000,
        ge=1000,
        description="give up awaiting a batch's acks after this long and retry it with a new producer",
    )
    retry_backoff_max_ms: int = Field(default=10_000, ge=100, description="cap of the exponential backoff")
    # Topic: created when missing; refused when its settings break ordering or retention.
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_retention_ms: int = Field(
        default=SEVEN_DAYS_MS,
        ge=-1,
        description="refuse a topic whose retention.ms is shorter (-1 = infinite is always fine)",
    )
    check_topic: bool = Field(default=True, description="create/verify the topic at start")
    lock_key: int = Field(
        default=0x6167656E746C6F67,  # "agentlog" in ASCII: one relay leader per database
        description="pg advisory lock key taken by the leader",
    )
