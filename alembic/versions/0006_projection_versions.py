"""Projection versions: which build of each read model is live, and which one a rollback restores.

A rebuild that swaps makes its build the projection's next version; the one it replaced is kept
(as `retired`, its tables in schema agentlog_retired_<projection>) until `agentlog projections
drop-old` (then `dropped`) or the next swap; `agentlog projections rollback` exchanges the two.
Version 1 is what the projector built from the migrations (recorded at the first swap).
Owned by projections/rebuild/versions.py.

Revision ID: 0006
Revises: 0005
"""

from eventstore.migrations import run_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE TABLE projection_versions (
            projector    text        NOT NULL,
            projection   text        NOT NULL,
            version      integer     NOT NULL CHECK (version >= 1),
            status       text        NOT NULL CHECK (status IN ('live', 'retired', 'dropped')),
            source       text        NOT NULL,  -- projector | store | kafka: what built it
            fingerprint  text,                   -- the handler code that built it (NULL: unknown)
            events       bigint,
            drift        jsonb,                  -- the drift counts accepted when it was swapped in
            created_at   timestamptz NOT NULL DEFAULT now(),
            changed_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projector, projection, version)
        );
        CREATE UNIQUE INDEX projection_versions_one_live_idx
            ON projection_versions (projector, projection) WHERE status = 'live';
        CREATE UNIQUE INDEX projection_versions_one_retired_idx
            ON projection_versions (projector, projection) WHERE status = 'retired';
        """
    )


def downgrade() -> None:
    run_script("DROP TABLE projection_versions;")
