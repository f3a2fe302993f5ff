"""ANALYZE skips the payload columns of the event store that no query filters or joins on: the
events' data and metadata, the streams' decision snapshots and the stored idempotent answers
(statistics target 0: the planner keeps no statistics of them, and needs none).

Why: autovacuum analyzes `events` whenever a tenth of it is new. For the two JSON columns it
detoasted and sorted the whole sample (30,000 rows) to build histograms nothing reads: measured
on this machine (100,000 events of a 200-character message, Postgres 15), ANALYZE events took
0.38-0.55 s of CPU, 0.12-0.17 s without them. In bench_system that burst, once a minute while
the tables grow, took most of a core for half a second and was the open loop's worst stretch.

The read models are left as they are: a rebuild recreates their tables (LIKE ... INCLUDING ALL
does not carry a column's statistics target), and they are analyzed far less.

Revision ID: 0015
Revises: 0014
"""

from eventstore.migrations import run_script

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = (
    ("events", "data"),
    ("events", "metadata"),
    ("streams", "state"),
    ("idempotency_keys", "response"),
)


def _set_statistics(target: int) -> str:
    return "\n".join(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS {target};" for table, column in COLUMNS)


def upgrade() -> None:
    run_script(_set_statistics(0))


def downgrade() -> None:
    run_script(_set_statistics(-1))  # the server's default_statistics_target again
