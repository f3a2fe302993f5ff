"""The order of "read all": an index on events (transaction_id, position).

`EventStore.read_all` (eventstore/positions.py) pages the log in (transaction id, position) order
after a cursor of both, so a row that commits late is never skipped; without this index every
page would sort the whole events table. Used by `agentlog projections rebuild`.

Revision ID: 0005
Revises: 0004
"""

from eventstore.migrations import run_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script("CREATE INDEX events_transaction_position_idx ON events (transaction_id, position);")


def downgrade() -> None:
    run_script("DROP INDEX events_transaction_position_idx;")
