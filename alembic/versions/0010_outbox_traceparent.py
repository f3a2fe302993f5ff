"""The outbox row carries the W3C traceparent of the request that appended it (nullable: only
when the command API traces), so the relay continues that trace across the Kafka hop.

`agentlog_append` gains a last parameter `p_traceparent` (default NULL, so a caller of the
13-argument form still works) and writes it into every outbox row of the append: still one
statement, one round trip. The function body is 0001's otherwise.

Revision ID: 0010
Revises: 0009
"""

from eventstore.migrations import run_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_APPEND_WITH_TRACEPARENT = """
        CREATE FUNCTION agentlog_append(
            p_tenant text, p_session_id text, p_expected bigint,
            p_event_ids uuid[], p_types text[], p_schema_versions integer[], p_data jsonb,
            p_metadata jsonb, p_state jsonb, p_status text,
            p_idem_key text, p_idem_hash text, p_idem_status integer,
            p_traceparent text DEFAULT NULL
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
                    INSERT INTO outbox (position, tenant, session_id, traceparent)
                    SELECT ins.position, p_tenant, p_session_id, p_traceparent FROM ins ORDER BY ins.position
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
"""

_APPEND_0001 = """
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
"""


def upgrade() -> None:
    run_script(
        "ALTER TABLE outbox ADD COLUMN traceparent text;\n"
        "DROP FUNCTION agentlog_append(text, text, bigint, uuid[], text[], integer[], jsonb, jsonb, jsonb, text, text, text, integer);\n"
        + _APPEND_WITH_TRACEPARENT
    )


def downgrade() -> None:
    run_script(
        "DROP FUNCTION agentlog_append(text, text, bigint, uuid[], text[], integer[], jsonb, jsonb, jsonb, text, text, text, integer, text);\n"
        + _APPEND_0001
        + "ALTER TABLE outbox DROP COLUMN traceparent;\n"
    )
