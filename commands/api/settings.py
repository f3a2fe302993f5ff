"""Settings of the command API process (AGENTLOG_COMMANDS_<FIELD>); nothing here connects."""

from __future__ import annotations

import math
import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentlog.edge.rate_limit import TenantRateLimit
from commands.handler import MAX_STATE_BYTES
from commands.state_cache import DEFAULT_BYTES as STATE_CACHE_BYTES

# Postgres connections per core of this machine, over all the command API's processes together.
# Each command is a short CPU-bound transaction in its backend. On the 2-core benchmark machine,
# where Postgres shares the cores, a pool of 20 let a burst put many backends on the run queue at
# once (their run-queue wait reached 1.2-1.9 cores in the worst quarter seconds; up to 18 waited on
# one WAL flush), each a scheduling group of its own (autogroup) weighing as much as the API process
# that must read their answers, so the queue fed itself. bench_system, six runs each, alternated
# (command -> accepted p99 in the open loop): pool 20: 126, 170, 196, 210, 257 ms and one
# overloaded; pool 6: 51, 73, 102, 106, 110 ms and 693 (a host stall: its last alone round ran at
# 0.7 of the others); medians, whole system 1,660 -> 1,757 commands/s, the API alone 2,164 -> 2,344.
CONNECTIONS_PER_CORE = 3
# Never more per process by default (the fixed default before): a big machine must not open more
# connections than Postgres allows (max_connections is 100 out of the box: five such processes).
MAX_DEFAULT_POOL_SIZE = 20
CGROUP = Path("/sys/fs/cgroup")  # a container's own cgroup is mounted here (cgroup namespace)


def cpu_quota_cores(cgroup: Path | None = None) -> int | None:
    """The cores a CPU quota allows this process's cgroup (rounded up), or None without a quota:
    cgroup v2's cpu.max ("max 100000" or "<quota> <period>"), else v1's cpu.cfs_quota_us (-1: none)
    over cpu.cfs_period_us. A container limited to 2 cores on a 64-core node sees all 64 in its
    affinity, and only the quota says 2."""
    cgroup = CGROUP if cgroup is None else cgroup
    try:
        quota, _, period = (cgroup / "cpu.max").read_text().strip().partition(" ")
    except OSError:
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        allowed, per = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return math.ceil(allowed / per) if allowed > 0 and per > 0 else None


def machine_cores() -> int:
    """The cores this process may run on: its affinity (else the machine's count), at most what
    its cgroup's CPU quota allows."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota_cores()
    return min(cores, quota) if quota else cores


def default_pool_size(workers: int, cores: int | None = None) -> int:
    """Connections of one process's pool: CONNECTIONS_PER_CORE per core, shared by the workers, at
    least 2 and at most MAX_DEFAULT_POOL_SIZE."""
    cores = machine_cores() if cores is None else cores
    return min(MAX_DEFAULT_POOL_SIZE, max(2, math.ceil(CONNECTIONS_PER_CORE * cores / max(1, workers))))


class CommandsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLOG_COMMANDS_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="interface the HTTP server binds")
    port: int = Field(default=8000, ge=1, le=65535)
    pool_min_size: int = Field(default=2, ge=1)
    pool_size: int | None = Field(
        default=None,
        ge=1,
        description="max Postgres connections of the process; default 3 per core of the machine (its CPU quota "
        "if lower) shared by the workers, 2 to 20 (6 on 2 cores with 1 worker): more let a burst crowd the cores "
        "with runnable backends",
    )
    pool_acquire_timeout_ms: int = Field(
        default=2_000, ge=1, description="longest wait for a pool connection; then 503 infrastructure_unavailable"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger bodies get 413")
    max_commands_per_request: int = Field(default=100, ge=1, le=1000)
    workers: int = Field(
        default=1, ge=1, le=64, description="server processes sharing the port; about one per core (docs/benchmarks.md)"
    )
    auth_cache_ttl_s: float = Field(
        default=5.0, ge=0, description="how long a good key is cached: the bound on how long a revoked key still works"
    )
    max_state_bytes: int = Field(
        default=MAX_STATE_BYTES,
        ge=1024,
        description="a session's state (JSON); a command past it gets 422 state_too_large",
    )
    state_cache_bytes: int = Field(
        default=STATE_CACHE_BYTES,
        ge=0,
        description="JSON bytes of the session states kept per process to decide the next command on "
        "without reading the session back (commands/state_cache.py); 0 = read every time",
    )
    append_batch_max: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="appends written together in one transaction at most, when they arrive while "
        "`append_lanes` writes are out (eventstore/group_commit.py); 1 = each in its own",
    )
    append_lanes: int = Field(
        default=2,
        ge=1,
        le=64,
        description="writes (one append, or a batch) out at once before appends wait to go together",
    )
    prices_file: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTLOG_PRICES_FILE", "AGENTLOG_COMMANDS_PRICES_FILE", "prices_file"),
        description="JSON price table of model calls (eventstore/pricing.py); unset: the shipped default",
    )
    # Backpressure (agentlog.edge): per-key token buckets and a bound on requests at once, per process.
    rate_limit_per_s: float = Field(
        default=0, ge=0, description="requests per second per API key (all tenants); 0 = unlimited; then 429"
    )
    rate_limit_burst: int = Field(default=0, ge=0, description="requests at once per key; 0 = one second's worth")
    rate_limit_by_tenant: dict[str, TenantRateLimit] = Field(
        default_factory=dict, description='per-tenant overrides, JSON: {"acme": {"per_s": 50, "burst": 100}}'
    )
    cors_origins: str = Field(
        default="",
        description="comma-separated origins whose pages may call this API from a browser (the session "
        "explorer of the query API, e.g. http://127.0.0.1:8001, for its 'fork here'); empty = none",
    )
    max_in_flight: int = Field(
        default=256, ge=0, description="requests served at once; one more gets 503 overloaded; 0 = unbounded"
    )

    def pool_max_size(self) -> int:
        """The pool's size: `pool_size` when set, else default_pool_size for this machine and `workers`."""
        return self.pool_size if self.pool_size is not None else default_pool_size(self.workers)
