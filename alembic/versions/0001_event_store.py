"""Event store: events, streams, outbox, idempotency keys, API keys.

Identity of a session is (tenant, session_id): two tenants may use the same session id without
seeing each other. `events` rows are never updated or deleted by the application. Each events row
records the id of the transaction that wrote it (xid8) so that "read all in order" can hold back
rows of transactions still open (see eventstore/positions.py). An insert into `outbox` notifies
channel `agentlog_outbox` once per statement, delivered at commit.

Revision ID: 0001
Revises:
"""

from eventstore.migrations import run_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE TABLE streams (
            tenant       text        NOT NULL,
            session_id   text        NOT NULL,
            version      bigint      NOT NULL CHECK (version >= 0),
            status       text        NOT NULL,
            state        jsonb       NOT NULL DEFAULT '{}'::jsonb,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant, session_id)
        );

        CREATE TABLE events (
            position        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant          text        NOT NULL,
            session_id      text        NOT NULL,
            version         bigint      NOT NULL CHECK (version >= 1),
            event_id        uuid        NOT NULL UNIQUE,
            type            text        NOT NULL,
            schema_version  integer     NOT NULL,
            data            jsonb       NOT NULL,
            metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
            recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
            transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
            UNIQUE (tenant, session_id, version)
        );
        CREATE INDEX events_recorded_at_idx ON events (tenant, session_id, recorded_at);

        CREATE TABLE outbox (
            id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            position    bigint      NOT NULL,
            tenant      text        NOT NULL,
            session_id  text        NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
        );

        CREATE FUNCTION agentlog_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('agentlog_outbox', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
            FOR EACH STATEMENT EXECUTE FUNCTION agentlog_notify_outbox();

        CREATE TABLE idempotency_keys (
            tenant        text        NOT NULL,
            key           text        NOT NULL,
            request_hash  text        NOT NULL,
            session_id    text,
            status_code   integer     NOT NULL,
            response      jsonb       NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant, key)
        );

        CREATE TABLE api_keys (
            key_id       text        PRIMARY KEY,
            tenant       text        NOT NULL,
            role         text        NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
            secret_hash  bytea       NOT NULL,
            description  text        NOT NULL DEFAULT '',
            created_at   timestamptz NOT NULL DEFAULT now(),
            revoked_at   timestamptz
        );
        """
    )


def downgrade() -> None:
    run_script(
        """
        DROP TABLE api_keys;
        DROP TABLE idempotency_keys;
        DROP TRIGGER outbox_notify ON outbox;
        DROP FUNCTION agentlog_notify_outbox();
        DROP TABLE outbox;
        DROP TABLE events;
        DROP TABLE streams;
        """
    )
