"""Read-model tables and projector checkpoints (owned by projections/).

Revision ID: 0003
Revises: 0002
"""

from eventstore.migrations import run_script  # noqa: F401  (multi-statement SQL)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
