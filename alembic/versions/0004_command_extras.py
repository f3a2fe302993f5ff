"""Command-side additions (owned by commands/).

Revision ID: 0004
Revises: 0003
"""

from eventstore.migrations import run_script  # noqa: F401  (multi-statement SQL)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
