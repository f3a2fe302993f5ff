"""Usage of model calls and session budgets (owned by projections/read_models/usage.py).

model_usage_v1 holds one row per model call (ModelCallRecorded): tokens, the cost the call was
priced at when it was decided (with the price version, both from the event: a rebuild gives the
same costs whatever the price table says later), latency and whether it failed. A fork's rows are
only its own calls: the calls it inherited stay with its source. /v1/stats/usage sums them with
the caller's filters and grouping. session_budgets_v1 holds each session's budget and whether
(and by which call) it was exceeded.

Revision ID: 0009
Revises: 0007
"""

from eventstore.migrations import run_script

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE TABLE model_usage_v1 (
            tenant        text           NOT NULL,
            session_id    text           NOT NULL,
            call_id       text           NOT NULL,
            version       bigint         NOT NULL,  -- the session version of its event
            agent         text,
            provider      text,
            model         text           NOT NULL,
            recorded_at   timestamptz    NOT NULL,
            input_tokens  bigint         NOT NULL,
            output_tokens bigint         NOT NULL,
            cached_tokens bigint         NOT NULL,
            cost_usd      numeric(30, 9),            -- NULL: the model had no price when called
            price_version text,
            latency_ms    bigint,
            error         boolean        NOT NULL,
            PRIMARY KEY (tenant, session_id, call_id)
        );
        CREATE INDEX model_usage_v1_by_time ON model_usage_v1 (tenant, recorded_at);

        CREATE TABLE session_budgets_v1 (
            tenant           text        NOT NULL,
            session_id       text        NOT NULL,
            max_tokens       bigint,
            max_cost_usd     numeric(30, 9),
            exceeded         boolean     NOT NULL DEFAULT false,
            exceeded_by      text,                  -- the model call that crossed it
            exceeded_kind    text,                  -- tokens | cost
            exceeded_version bigint,
            exceeded_at      timestamptz,
            PRIMARY KEY (tenant, session_id)
        );
        """
    )


def downgrade() -> None:
    run_script(
        """
        DROP TABLE session_budgets_v1;
        DROP TABLE model_usage_v1;
        """
    )
