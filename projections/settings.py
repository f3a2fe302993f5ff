"""Settings of the projector (AGENTLOG_PROJECTOR_*) and of the query API (AGENTLOG_QUERIES_*).

The consumer group id carries a version (agentlog.projector.v1): a projector that changes what it
writes gets a new group and new read-model tables, and starts from the beginning of the log.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentlog.edge.rate_limit import TenantRateLimit

DEFAULT_GROUP = "agentlog.projector.v1"
NOTIFY_CHANNEL = "agentlog_projected"


class ProjectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLOG_PROJECTOR_", extra="ignore")

    group_id: str = Field(
        default=DEFAULT_GROUP, description="Kafka consumer group; also the key of its checkpoints and session versions"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="max records per transaction")
    batch_window_ms: int = Field(
        default=5,  # small: the relay's window (40 ms, outbox/settings.py) already gathers each fetch's records
        ge=0,
        le=10_000,
        description="under load (the previous batch had several records), fetch on until this long after it was "
        "taken before applying, so transactions grow with the load (at most this much added latency); after "
        "a single-record batch or an idle spell a record is applied at once; 0 = apply what each fetch brings",
    )
    fetch_timeout_ms: int = Field(default=500, ge=1, le=60_000, description="longest wait of an idle poll")
    fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        description="the broker answers a fetch once this much data is there (or after fetch_max_wait_ms); "
        "above 1, an idle system's first record waits up to fetch_max_wait_ms",
    )
    fetch_max_wait_ms: int = Field(
        default=500, ge=0, le=60_000, description="longest the broker holds a fetch waiting for fetch_min_bytes"
    )
    max_retries: int = Field(
        default=3, ge=1, le=20, description="attempts per event and projection before it is parked"
    )
    snapshot_every: int = Field(
        default=100,
        ge=0,
        description="write a fold snapshot (eventstore/fold_snapshots.py) every this many events of a session, so "
        "replay, blame and diff to a version fold at most this many events; 0 = none",
    )
    snapshot_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="the largest share of the projector's time its background fold snapshot writer takes "
        "(it pauses after each write); 1 = no pauses",
    )
    kafka_commit_interval_s: float = Field(default=5.0, ge=0, description="informational Kafka commits (lag tools)")
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    # Measured in bench_system (whole system on 2 cores, whole and alone interleaved): the whole
    # system took 0.68-0.83 of the command API alone's commands/s at nice 0 (median 0.71, 7 runs),
    # 0.69-0.91 at 10 (median 0.82, 17 runs).
    niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority of the projector process (Linux nice): background work, its batching "
        "absorbs waits, so on shared cores the command API goes first; 0 = as the APIs",
    )
    # Off by default since the command API's group commit (docs/benchmarks.md, stop 34): the command
    # path got cheaper, 80 % of the system's capacity is a higher rate, and a projector on idle CPU
    # time fell behind under it (bench_system, four runs: command -> visible p99 174-1,661 ms); at its
    # nice, with its backends at theirs, 80.4-102.9 ms in six, whole / alone 0.80-0.88.
    idle_cpu: bool = Field(
        default=False,
        description="where the machine allows it (a cgroup with cpu.idle, agentlog/stack/background.py), run on CPU "
        "time the APIs and PostgreSQL leave idle, the projector's PostgreSQL backends too when they are on this machine: "
        "preempted at once when they want a core, not after a slice; false = its nice alone (the default: on idle "
        "time it falls behind a loaded system's appends)",
    )
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="serve /metrics on this port if set")
    metrics_host: str = Field(
        default="127.0.0.1",
        description="interface /metrics binds to; it has no auth, so loopback unless set (0.0.0.0 = all)",
    )


class QueriesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLOG_QUERIES_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65535)
    projector_group: str = Field(default=DEFAULT_GROUP, description="whose session versions read-your-writes waits on")
    default_wait_ms: int = Field(default=5_000, ge=0, le=30_000)
    max_wait_ms: int = Field(default=30_000, ge=0, le=120_000)
    poll_interval_ms: int = Field(default=250, ge=10, description="fallback when a NOTIFY is missed")
    pool_max_size: int = Field(default=10, ge=1)
    pool_acquire_timeout_ms: int = Field(
        default=2_000, ge=1, description="longest wait for a pool connection; then 503 infrastructure_unavailable"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger bodies get 413")
    auth_cache_ttl_s: float = Field(
        default=5.0, ge=0, description="how long a good key is cached: the bound on how long a revoked key still works"
    )
    # Backpressure (agentlog.edge): per-key token buckets and a bound on requests at once, per process.
    rate_limit_per_s: float = Field(
        default=0, ge=0, description="requests per second per API key (all tenants); 0 = unlimited; then 429"
    )
    rate_limit_burst: int = Field(default=0, ge=0, description="requests at once per key; 0 = one second's worth")
    rate_limit_by_tenant: dict[str, TenantRateLimit] = Field(
        default_factory=dict, description='per-tenant overrides, JSON: {"acme": {"per_s": 50, "burst": 100}}'
    )
    max_in_flight: int = Field(
        default=512,
        ge=0,
        description="requests served at once (read-your-writes waits included); one more gets 503; 0 = unbounded",
    )
    # The session explorer (/ui) and its live stream (GET /v1/sessions/{id}/events).
    ui_command_api_url: str = Field(
        default="",
        pattern=r"^(https?://[^/\s?#]+/?)?$",
        description="origin of the command API that the explorer's 'fork here' posts to (the command API must "
        "list this API's origin in AGENTLOG_COMMANDS_CORS_ORIGINS); empty = the explorer offers no fork",
    )
    live_keepalive_s: float = Field(
        default=15.0, gt=0, le=300, description="a live stream with nothing new sends a comment this often"
    )
    live_max_s: float = Field(
        default=300.0,
        gt=0,
        description="a live stream ends after this long (the page reconnects from its last version; "
        "a revoked key is refused at the latest then, and at each keepalive)",
    )
    live_max_streams: int = Field(
        default=100, ge=0, description="live streams at once per process; one more gets 503; 0 = no live streams"
    )
