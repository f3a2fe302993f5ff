"""Fold snapshots carry what the agents knew (eventstore/knowledge.py), in parts: each row the part
that changed since the row before it (conversation entries added, tool calls and approvals touched,
model calls and compactions added), so the transcript views, diff and `agentlog context` start at
a snapshot instead of version 1. Rows of the previous fold format have none (NULL) and are unused:
the code's FOLD_FORMAT changed with this column.

Revision ID: 0012
Revises: 0011
"""

from eventstore.migrations import run_script

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script("ALTER TABLE fold_snapshots_v1 ADD COLUMN knowledge json;  -- Knowledge.part(), as JSON")


def downgrade() -> None:
    run_script("ALTER TABLE fold_snapshots_v1 DROP COLUMN knowledge;")
