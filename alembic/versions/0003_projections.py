"""Read-model tables and projector bookkeeping (owned by projections/).

Read-model tables carry their version in the name (a rebuild builds *_v2 beside *_v1) and are keyed
by (tenant, session_id, ...): a session's identity includes its tenant. Bookkeeping:
- projection_checkpoints: the next Kafka offset per (group, topic, partition), written in the same
  transaction as the batch's effects and only if it still holds the offset the writer expected.
- projection_session_versions: the last version a projector processed per session (applied or
  parked); the duplicate/gap guard, and what read-your-writes waits on.
- projection_parked_events: events a projection's handler kept failing on (dead letters).
`agentlog_json_merge_patch` is RFC 7396 in SQL so a state section changes in one statement.
A commit of a projector batch notifies channel `agentlog_projected` (sent by the projector).

Revision ID: 0003
Revises: 0002
"""

from eventstore.migrations import run_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE FUNCTION agentlog_json_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
        LANGUAGE plpgsql IMMUTABLE AS $$
        DECLARE
            result jsonb;
            k text;
            v jsonb;
        BEGIN
            IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
                RETURN patch;
            END IF;
            result := CASE WHEN jsonb_typeof(target) = 'object' THEN target ELSE '{}'::jsonb END;
            FOR k, v IN SELECT * FROM jsonb_each(patch) LOOP
                IF jsonb_typeof(v) = 'null' THEN
                    result := result - k;
                ELSE
                    result := jsonb_set(result, ARRAY[k], agentlog_json_merge_patch(result -> k, v));
                END IF;
            END LOOP;
            RETURN result;
        END $$;

        CREATE TABLE projection_checkpoints (
            group_id     text        NOT NULL,
            topic        text        NOT NULL,
            partition    integer     NOT NULL,
            next_offset  bigint      NOT NULL CHECK (next_offset >= 0),
            high_watermark bigint,  -- the partition's end as last seen by the writer (for lag)
            updated_by   text        NOT NULL,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (group_id, topic, partition)
        );

        CREATE TABLE projection_session_versions (
            projector    text        NOT NULL,
            tenant       text        NOT NULL,
            session_id   text        NOT NULL,
            version      bigint      NOT NULL,
            position     bigint      NOT NULL,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projector, tenant, session_id)
        );

        CREATE TABLE projection_parked_events (
            id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            projector      text        NOT NULL,
            projection     text        NOT NULL,
            tenant         text        NOT NULL,
            session_id     text        NOT NULL,
            version        bigint      NOT NULL,
            position       bigint      NOT NULL,
            event          jsonb       NOT NULL,
            error          text        NOT NULL,
            attempts       integer     NOT NULL,
            parked_at      timestamptz NOT NULL DEFAULT now(),
            last_retry_at  timestamptz,
            UNIQUE (projector, projection, tenant, session_id, version)
        );
        CREATE INDEX projection_parked_session_idx ON projection_parked_events (tenant, session_id);

        CREATE TABLE session_summaries_v1 (
            tenant              text        NOT NULL,
            session_id          text        NOT NULL,
            status              text        NOT NULL,
            workflow            text,
            title               text,
            agents              text[]      NOT NULL DEFAULT '{}',
            forked_from         text,
            forked_from_version bigint,
            last_checkpoint     text,
            last_step           integer,
            outcome             text,
            message_count       integer     NOT NULL DEFAULT 0,
            tool_call_count     integer     NOT NULL DEFAULT 0,
            tool_failure_count  integer     NOT NULL DEFAULT 0,
            error_count         integer     NOT NULL DEFAULT 0,
            created_at          timestamptz NOT NULL,
            updated_at          timestamptz NOT NULL,
            last_version        bigint      NOT NULL DEFAULT 0,
            last_position       bigint      NOT NULL DEFAULT 0,
            has_parked_events   boolean     NOT NULL DEFAULT false,
            PRIMARY KEY (tenant, session_id)
        );
        CREATE INDEX session_summaries_v1_updated_idx ON session_summaries_v1 (tenant, updated_at, session_id);
        CREATE INDEX session_summaries_v1_agents_idx ON session_summaries_v1 USING gin (agents);

        CREATE TABLE session_state_v1 (
            tenant      text        NOT NULL,
            session_id  text        NOT NULL,
            section     text        NOT NULL,
            value       jsonb       NOT NULL,
            owner       text,
            last_agent  text,
            version     bigint      NOT NULL,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant, session_id, section)
        );

        CREATE TABLE session_timeline_v1 (
            tenant       text        NOT NULL,
            session_id   text        NOT NULL,
            version      bigint      NOT NULL,
            position     bigint      NOT NULL,
            type         text        NOT NULL,
            summary      text        NOT NULL,
            agent        text,
            recorded_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant, session_id, version)
        );

        CREATE TABLE tool_calls_v1 (
            tenant             text        NOT NULL,
            session_id         text        NOT NULL,
            call_id            text        NOT NULL,
            tool               text,
            agent              text,
            arguments          jsonb,
            status             text        NOT NULL CHECK (status IN ('requested', 'completed', 'failed')),
            requested_version  bigint,
            requested_at       timestamptz,
            finished_at        timestamptz,
            duration_ms        bigint,
            error              text,
            PRIMARY KEY (tenant, session_id, call_id)
        );

        CREATE TABLE tool_stats_v1 (
            tenant             text    NOT NULL,
            tool               text    NOT NULL,
            calls              bigint  NOT NULL DEFAULT 0,
            completed          bigint  NOT NULL DEFAULT 0,
            failures           bigint  NOT NULL DEFAULT 0,
            timed_calls        bigint  NOT NULL DEFAULT 0,
            total_duration_ms  bigint  NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, tool)
        );

        CREATE TABLE approvals_v1 (
            tenant              text        NOT NULL,
            session_id          text        NOT NULL,
            approval_id         text        NOT NULL,
            action              text,
            risk                text,
            requested_by        text,
            details             jsonb,
            expires_at          timestamptz,
            status              text        NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
            reviewer            text,
            comment             text,
            decided_at          timestamptz,
            requested_at        timestamptz,
            requested_position  bigint      NOT NULL,
            PRIMARY KEY (tenant, session_id, approval_id)
        );
        CREATE INDEX approvals_v1_queue_idx ON approvals_v1 (tenant, status, requested_position);

        CREATE TABLE state_audit_v1 (
            tenant       text        NOT NULL,
            session_id   text        NOT NULL,
            version      bigint      NOT NULL,
            section      text        NOT NULL,
            agent        text,
            patch        jsonb       NOT NULL,
            old_value    jsonb,
            new_value    jsonb       NOT NULL,
            recorded_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant, session_id, section, version)
        );
        """
    )


def downgrade() -> None:
    run_script(
        """
        DROP TABLE state_audit_v1;
        DROP TABLE approvals_v1;
        DROP TABLE tool_stats_v1;
        DROP TABLE tool_calls_v1;
        DROP TABLE session_timeline_v1;
        DROP TABLE session_state_v1;
        DROP TABLE session_summaries_v1;
        DROP TABLE projection_parked_events;
        DROP TABLE projection_session_versions;
        DROP TABLE projection_checkpoints;
        DROP FUNCTION agentlog_json_merge_patch(jsonb, jsonb);
        """
    )
