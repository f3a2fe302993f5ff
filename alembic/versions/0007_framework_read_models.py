"""Read models of agent frameworks' records (agentlog.integrations): LangGraph threads and SDK
conversation memory (owned by projections/read_models/graph_checkpoints.py and
conversation_items.py).

LangGraph: a thread is a session. graph_threads_v1 holds each thread's lineage (a copied thread
is a fork: `forked_from` at `forked_from_version`) and the versions at which it was deleted;
checkpoints, channel values (one row per channel version) and pending writes are kept per
session, never deleted: a deletion sets `hidden_from` (the first deletion after the row), so
reads skip them and a fork made before the deletion still sees them.

Conversation memory: one row per item ever added, numbered per session; a pop or a clear sets
`removed_version`; conversation_removals_v1 keeps the pops and clears so an item applied after
its removal (a parked event retried) is removed on arrival.

Revision ID: 0007
Revises: 0006
"""

from eventstore.migrations import run_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE TABLE graph_threads_v1 (
            tenant              text     NOT NULL,
            session_id          text     NOT NULL,
            thread_id           text,              -- LangGraph's id, from the thread's first record
            forked_from         text,              -- copy_thread: the source session
            forked_from_version bigint,
            deleted_versions    bigint[] NOT NULL DEFAULT '{}',
            PRIMARY KEY (tenant, session_id)
        );

        CREATE TABLE graph_checkpoints_v1 (
            tenant               text        NOT NULL,
            session_id           text        NOT NULL,
            checkpoint_ns        text        NOT NULL,
            checkpoint_id        text        NOT NULL,
            parent_checkpoint_id text,
            checkpoint           jsonb       NOT NULL,  -- channel_values: the JSON scalars only
            metadata             jsonb       NOT NULL,
            version              bigint      NOT NULL,  -- the session version of its event
            hidden_from          bigint,                -- the version of the deletion that hid it
            recorded_at          timestamptz NOT NULL,
            PRIMARY KEY (tenant, session_id, checkpoint_ns, checkpoint_id)
        );
        CREATE INDEX graph_checkpoints_v1_by_id ON graph_checkpoints_v1 (tenant, session_id, checkpoint_id);
        CREATE INDEX graph_checkpoints_v1_metadata ON graph_checkpoints_v1 USING gin (metadata jsonb_path_ops);

        CREATE TABLE graph_blobs_v1 (
            tenant          text   NOT NULL,
            session_id      text   NOT NULL,
            checkpoint_ns   text   NOT NULL,
            channel         text   NOT NULL,
            channel_version text   NOT NULL,
            value           jsonb  NOT NULL,  -- {"kind": "json"|"bytes"|"empty", ...}
            version         bigint NOT NULL,
            PRIMARY KEY (tenant, session_id, checkpoint_ns, channel, channel_version)
        );

        CREATE TABLE graph_writes_v1 (
            tenant        text    NOT NULL,
            session_id    text    NOT NULL,
            checkpoint_ns text    NOT NULL,
            checkpoint_id text    NOT NULL,
            task_id       text    NOT NULL,
            idx           integer NOT NULL,
            channel       text    NOT NULL,
            task_path     text    NOT NULL,
            value         jsonb   NOT NULL,
            version       bigint  NOT NULL,
            hidden_from   bigint,
            PRIMARY KEY (tenant, session_id, checkpoint_ns, checkpoint_id, task_id, idx)
        );

        CREATE TABLE conversation_items_v1 (
            tenant          text        NOT NULL,
            session_id      text        NOT NULL,
            idx             bigint      NOT NULL,
            item            jsonb       NOT NULL,
            agent           text,
            added_version   bigint      NOT NULL,
            removed_version bigint,
            recorded_at     timestamptz NOT NULL,
            PRIMARY KEY (tenant, session_id, idx)
        );
        CREATE INDEX conversation_items_v1_live ON conversation_items_v1 (tenant, session_id, idx)
            WHERE removed_version IS NULL;

        CREATE TABLE conversation_removals_v1 (
            tenant     text   NOT NULL,
            session_id text   NOT NULL,
            version    bigint NOT NULL,
            idx        bigint,  -- the popped item; NULL for a clear
            PRIMARY KEY (tenant, session_id, version)
        );
        """
    )


def downgrade() -> None:
    run_script(
        """
        DROP TABLE conversation_removals_v1;
        DROP TABLE conversation_items_v1;
        DROP TABLE graph_writes_v1;
        DROP TABLE graph_blobs_v1;
        DROP TABLE graph_checkpoints_v1;
        DROP TABLE graph_threads_v1;
        """
    )
