"""Outbox relay bookkeeping (owned by outbox/).

relay_instances: one row per running relay process (its role and heartbeat), so `agentlog status`
can name the current leader; the lock itself is a Postgres advisory lock, this table only reports.
outbox_parked: outbox rows the relay can never publish (a record larger than the producer accepts),
moved aside with the error so that every other session keeps flowing; an operator replays them.
outbox autovacuum: a queue table whose every row is deleted soon after insert; vacuum it after a
fixed number of dead rows instead of a fraction of its (then large) size, so a long backlog does not
leave tens of thousands of dead entries at the head of the id index that every relay read starts at.

Revision ID: 0002
Revises: 0001
"""

from eventstore.migrations import run_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE TABLE relay_instances (
            instance_id   text        PRIMARY KEY,
            hostname      text        NOT NULL,
            pid           integer     NOT NULL,
            role          text        NOT NULL CHECK (role IN ('leader', 'standby')),
            started_at    timestamptz NOT NULL DEFAULT now(),
            heartbeat_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE outbox_parked (
            id          bigint      PRIMARY KEY,
            position    bigint      NOT NULL,
            tenant      text        NOT NULL,
            session_id  text        NOT NULL,
            created_at  timestamptz NOT NULL,
            error       text        NOT NULL,
            parked_at   timestamptz NOT NULL DEFAULT now()
        );

        ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
        """
    )


def downgrade() -> None:
    run_script(
        """
        ALTER TABLE outbox RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
        DROP TABLE outbox_parked;
        DROP TABLE relay_instances;
        """
    )
