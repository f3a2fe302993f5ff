"""Event store: events, streams, outbox, idempotency keys, API keys.

Identity of a session is (tenant, session_id): two tenants may use the same session id without
seeing each other. `events` rows are never updated or deleted by the application. Each events row
records the id of the transaction that wrote it (xid8) so that "read all in order" can hold back
rows of transactions still open (see eventstore/positions.py). An insert into `outbox` notifies
channel `agentlog_outbox` once per statement, delivered at commit.

`agentlog_append` is the one write path of the log: events, outbox rows, the stream row (version,
status, state snapshot, last position) and the idempotency row in one statement, so an append is
one transaction and one round trip. It serialises appends per stream with a transaction advisory
lock (which, unlike a row lock, exists before the stream's first event and assigns no xid) and
takes its xid immediately before drawing positions; eventstore/positions.py says why. Refusals are
raised as SQLSTATE P0001 with HINT `agentlog:<reason>` and the current version in DETAIL.

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
            last_position bigint     NOT NULL DEFAULT 0,
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

        CREATE FUNCTION agentlog_append(
            p_tenant text, p_session_id text, p_expected bigint,
            p_event_ids uuid[], p_types text[], p_schema_versions integer[], p_data jsonb,
            p_metadata jsonb, p_state jsonb, p_status text,
            p_idem_key text, p_idem_hash text, p_idem_status integer
        ) RETURNS TABLE (new_version bigint, last_position bigint)
        LANGUAGE plpgsql AS $$
        DECLARE
            v_count   integer := coalesce(array_length(p_event_ids, 1), 0);
            v_current bigint;
            v_last    bigint;
            v_exists  boolean;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant || chr(31) || p_session_id, 0));
            SELECT s.version, s.last_position INTO v_current, v_last
              FROM streams s WHERE s.tenant = p_tenant AND s.session_id = p_session_id;
            v_exists := FOUND;
            IF NOT v_exists THEN
                v_current := 0;
                v_last := 0;
            END IF;
            -- p_expected: >= 0 exact version, -1 no stream, -2 any.
            IF (p_expected = -1 AND v_exists) THEN
                RAISE EXCEPTION 'session exists' USING ERRCODE = 'P0001',
                    HINT = 'agentlog:stream_exists', DETAIL = v_current::text;
            ELSIF (p_expected >= 0 AND p_expected <> v_current) THEN
                RAISE EXCEPTION 'version conflict' USING ERRCODE = 'P0001',
                    HINT = 'agentlog:version_conflict', DETAIL = v_current::text;
            END IF;
            IF v_count > 0 THEN
                PERFORM pg_current_xact_id();
                WITH ins AS (
                    INSERT INTO events (tenant, session_id, version, event_id, type, schema_version,
                                        data, metadata)
                    SELECT p_tenant, p_session_id, v_current + e.ord, e.event_id, e.type, e.sv,
                           d.value, p_metadata
                      FROM unnest(p_event_ids, p_types, p_schema_versions)
                           WITH ORDINALITY AS e(event_id, type, sv, ord)
                      JOIN jsonb_array_elements(p_data) WITH ORDINALITY AS d(value, ord) USING (ord)
                     ORDER BY e.ord
                    RETURNING position
                ), box AS (
                    INSERT INTO outbox (position, tenant, session_id)
                    SELECT ins.position, p_tenant, p_session_id FROM ins ORDER BY ins.position
                    RETURNING outbox.position
                )
                SELECT max(box.position) INTO v_last FROM box;
                IF v_exists THEN
                    UPDATE streams s
                       SET version = v_current + v_count, status = p_status, state = p_state,
                           last_position = v_last, updated_at = now()
                     WHERE s.tenant = p_tenant AND s.session_id = p_session_id;
                ELSE
                    INSERT INTO streams (tenant, session_id, version, status, state, last_position)
                    VALUES (p_tenant, p_session_id, v_count, p_status, p_state, v_last);
                END IF;
            END IF;
            IF p_idem_key IS NOT NULL THEN
                INSERT INTO idempotency_keys (tenant, key, request_hash, session_id, status_code,
                                              response)
                VALUES (p_tenant, p_idem_key, p_idem_hash, p_session_id, p_idem_status,
                        jsonb_build_object('session_id', p_session_id,
                                           'version', v_current + v_count,
                                           'position', v_last,
                                           'event_ids', to_jsonb(coalesce(p_event_ids, '{}'))))
                ON CONFLICT DO NOTHING;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'idempotency key taken' USING ERRCODE = 'P0001',
                        HINT = 'agentlog:idempotency_key_taken', DETAIL = v_current::text;
                END IF;
            END IF;
            RETURN QUERY SELECT v_current + v_count, v_last;
        END $$;

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
        DROP FUNCTION agentlog_append(text, text, bigint, uuid[], text[], integer[], jsonb, jsonb,
                                      jsonb, text, text, text, integer);
        DROP TABLE idempotency_keys;
        DROP TRIGGER outbox_notify ON outbox;
        DROP FUNCTION agentlog_notify_outbox();
        DROP TABLE outbox;
        DROP TABLE events;
        DROP TABLE streams;
        """
    )
