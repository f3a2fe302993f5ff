"""Outbox relay bookkeeping (owned by outbox/).

Revision ID: 0002
Revises: 0001
"""

from eventstore.migrations import run_script  # noqa: F401  (multi-statement SQL)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
