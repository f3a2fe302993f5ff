"""Settings of the local development stack (`agentlog stack`, `agentlog dev`) and the shared
settings the shell hands to every component it starts.

Invariant: pydantic-settings classes are the only readers of the environment. The event store's
`Settings` has plain defaults; when the environment names no database or Kafka, the shell points
them at this stack's ports (AGENTLOG_STACK_PG_PORT, AGENTLOG_STACK_KAFKA_PORT), so the event store
never imports the shell.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventstore.settings import DEFAULT_KAFKA_PORT, DEFAULT_PG_PORT, Settings


class StackSettings(BaseSettings):
    """The local development stack: where its data lives, which ports it takes, and whether the
    environment names services of the user's own instead (then the stack leaves that one alone)."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_STACK_", extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path(".agentlog"), description="project-local folder for data and logs")
    pg_port: int = DEFAULT_PG_PORT
    kafka_port: int = DEFAULT_KAFKA_PORT
    kafka_controller_port: int = Field(default=0, description="KRaft controller port; 0: the Kafka port + 1")
    kafka_version: str = "4.1.2"
    log4j_version: str = "2.24.3"
    kafka_heap: str = "512m"
    ready_timeout_s: float = 120.0
    external_database_url: str | None = Field(
        default=None,
        validation_alias="AGENTLOG_DATABASE_URL",
        description="the user's own PostgreSQL; the stack starts none then",
    )
    external_kafka: str | None = Field(
        default=None,
        validation_alias="AGENTLOG_KAFKA_BOOTSTRAP_SERVERS",
        description="the user's own Kafka; the stack starts none then",
    )

    @model_validator(mode="after")
    def _controller_beside_broker(self) -> StackSettings:
        # Moving the broker with AGENTLOG_STACK_KAFKA_PORT alone moves its controller too, so a second
        # stack on the same machine needs one variable per service, not two for Kafka.
        if self.kafka_controller_port == 0:
            self.kafka_controller_port = self.kafka_port + 1
        return self


def local_database_url(stack: StackSettings) -> str:
    return f"postgresql://agentlog@127.0.0.1:{stack.pg_port}/agentlog"


def local_kafka(stack: StackSettings) -> str:
    return f"127.0.0.1:{stack.kafka_port}"


def shared_settings(stack: StackSettings | None = None) -> Settings:
    """The shared `Settings` of one shell process: the environment's, with the local stack's
    database and Kafka wherever the environment names none."""
    stack = stack or StackSettings()
    settings = Settings()
    update: dict = {}
    if "database_url" not in settings.model_fields_set:
        update["database_url"] = SecretStr(local_database_url(stack))
    if "kafka_bootstrap_servers" not in settings.model_fields_set:
        update["kafka_bootstrap_servers"] = local_kafka(stack)
    return settings.model_copy(update=update)
