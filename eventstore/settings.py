"""Explicit settings for every agentlog process, read from the environment.

Shared settings use the names of the public contract (AGENTLOG_DATABASE_URL,
AGENTLOG_KAFKA_BOOTSTRAP_SERVERS, AGENTLOG_KAFKA_TOPIC); a component's own settings are
AGENTLOG_<COMPONENT>_<FIELD> (e.g. AGENTLOG_RELAY_BATCH_SIZE). Nothing here connects to anything.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PG_PORT = 54329
DEFAULT_KAFKA_PORT = 19092
DEFAULT_DATABASE_URL = f"postgresql://agentlog@127.0.0.1:{DEFAULT_PG_PORT}/agentlog"
DEFAULT_KAFKA_BOOTSTRAP = f"127.0.0.1:{DEFAULT_KAFKA_PORT}"
DEFAULT_TOPIC = "agentlog.sessions.v1"


class StackSettings(BaseSettings):
    """The local development stack (`agentlog stack`): where its data lives and which ports it takes."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_STACK_", extra="ignore")

    home: Path = Field(default=Path(".agentlog"), description="project-local folder for data and logs")
    pg_port: int = DEFAULT_PG_PORT
    kafka_port: int = DEFAULT_KAFKA_PORT
    kafka_controller_port: int = DEFAULT_KAFKA_PORT + 1
    kafka_version: str = "4.1.2"
    log4j_version: str = "2.24.3"
    kafka_heap: str = "512m"
    ready_timeout_s: float = 120.0


def _local_database_url() -> SecretStr:
    """Without AGENTLOG_DATABASE_URL: the local stack's PostgreSQL, on the port `agentlog stack` uses."""
    return SecretStr(f"postgresql://agentlog@127.0.0.1:{StackSettings().pg_port}/agentlog")


def _local_kafka() -> str:
    return f"127.0.0.1:{StackSettings().kafka_port}"


class Settings(BaseSettings):
    """Settings every component shares."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_", extra="ignore")

    database_url: SecretStr = Field(
        default_factory=_local_database_url,
        description="asyncpg DSN of the event store; a secret because it may carry a password.",
    )
    kafka_bootstrap_servers: str = Field(default_factory=_local_kafka)
    kafka_topic: str = DEFAULT_TOPIC
    kafka_partitions: int = Field(default=3, ge=1, le=1024)
    log_level: str = "INFO"

    def dsn(self) -> str:
        return self.database_url.get_secret_value()


def load_settings() -> Settings:
    return Settings()
