"""Snapshots of the fold every K events (eventstore/fold_snapshots.py), where time travel to a
version starts instead of version 1.

One row per (tenant, session, fold format, version): the decision state and the blame tree that
folding the session's lineage up to that version gives. The format is part of the key, so rows of
an older fold stay beside the new ones, unused, until dropped; the log remains the truth and any
row can be rebuilt from it. Written by the projector off the command path; not a read model (a
projection rebuild neither builds nor swaps it).

Revision ID: 0011
Revises: 0010
"""

from eventstore.migrations import run_script

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(
        """
        CREATE TABLE fold_snapshots_v1 (
            tenant      text        NOT NULL,
            session_id  text        NOT NULL,
            format      text        NOT NULL,  -- eventstore.fold_snapshots.FOLD_FORMAT
            version     bigint      NOT NULL,
            -- json, not jsonb: the text as written, so key order (sections, blame trees) is the
            -- fold's order and a replay from a snapshot prints exactly what a full one does
            state       json        NOT NULL,  -- SessionState.to_snapshot()
            blame       json        NOT NULL,  -- BlameFold.to_json()
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant, session_id, format, version)
        );
        """
    )


def downgrade() -> None:
    run_script("DROP TABLE fold_snapshots_v1;")
