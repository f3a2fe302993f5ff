"""Settings of the command API process (AGENTLOG_COMMANDS_<FIELD>); nothing here connects."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentlog.edge.rate_limit import TenantRateLimit
from commands.handler import MAX_STATE_BYTES
from commands.state_cache import DEFAULT_BYTES as STATE_CACHE_BYTES


class CommandsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLOG_COMMANDS_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="interface the HTTP server binds")
    port: int = Field(default=8000, ge=1, le=65535)
    pool_min_size: int = Field(default=2, ge=1)
    pool_size: int = Field(default=20, ge=1, description="max Postgres connections of the process")
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
