"""Explicit settings for every agentlog process, read from the environment.

Shared settings use the names of the public contract (AGENTLOG_DATABASE_URL,
AGENTLOG_KAFKA_BOOTSTRAP_SERVERS, AGENTLOG_KAFKA_TOPIC); a component's own settings are
AGENTLOG_<COMPONENT>_<FIELD> (e.g. AGENTLOG_RELAY_BATCH_SIZE). Nothing here connects to anything.
Each process builds these once at its entry point and passes them down. The defaults are the local
stack's standard ports; the shell (agentlog.stack.settings) points them at the stack's configured
ports when the environment names no database or Kafka.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PG_PORT = 54329
DEFAULT_KAFKA_PORT = 19092
DEFAULT_DATABASE_URL = f"postgresql://agentlog@127.0.0.1:{DEFAULT_PG_PORT}/agentlog"
DEFAULT_KAFKA_BOOTSTRAP = f"127.0.0.1:{DEFAULT_KAFKA_PORT}"
DEFAULT_TOPIC = "agentlog.sessions.v1"


class Settings(BaseSettings):
    """Settings every component shares."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_", extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        description="asyncpg DSN of the event store; a secret because it may carry a password.",
    )
    database_startup_wait_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "how long a starting component waits for PostgreSQL to accept connections (refused, "
            "starting up) before it exits with 2; 0 = fail at once. A login refusal (wrong password "
            "or database) fails at once whatever this says."
        ),
    )
    kafka_bootstrap_servers: str = DEFAULT_KAFKA_BOOTSTRAP
    kafka_topic: str = DEFAULT_TOPIC
    kafka_partitions: int = Field(default=3, ge=1, le=1024)
    log_level: str = "INFO"

    def dsn(self) -> str:
        return self.database_url.get_secret_value()
