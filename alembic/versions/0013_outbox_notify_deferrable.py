"""The outbox trigger's NOTIFY can be left to the appending process: a session that sets
`agentlog.outbox_notify = 'deferred'` (a connection setting) sends none from its transactions;
every other session notifies as before.

Why: a transaction that NOTIFYs takes PostgreSQL's one notification-queue lock at commit and keeps
it until the commit ends, WAL flush included, so every appending transaction waited for the one
before it to reach the disk (no group commit). Measured with 16 connections committing one-row
inserts: 3,082-3,737 commits/s without NOTIFY, 1,672-1,820 with it, p50 latency 4-5 ms -> 8 ms.
The command API defers and wakes the relay after its appends commit instead
(eventstore/outbox_wake.py); the CLI import, tests and anything else writing the outbox unchanged.

Revision ID: 0013
Revises: 0012
"""

from eventstore.migrations import run_script

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE OR REPLACE FUNCTION agentlog_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('agentlog.outbox_notify', true) IS DISTINCT FROM 'deferred' THEN
                PERFORM pg_notify('agentlog_outbox', '');
            END IF;
            RETURN NULL;
        END $$;
        """
    )


def downgrade() -> None:
    run_script(
        """
        CREATE OR REPLACE FUNCTION agentlog_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('agentlog_outbox', '');
            RETURN NULL;
        END $$;
        """
    )
