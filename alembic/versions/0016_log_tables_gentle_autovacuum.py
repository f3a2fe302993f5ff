"""Autovacuum works through the tables that gain a row per event at a fifth of its default pace
(autovacuum_vacuum_cost_delay 10 ms instead of the server's 2 ms): the event log and the
append-only read models (timeline, conversation items, state audit, model usage).

Why: these tables are insert-only, so vacuuming them is not urgent. It sets the visibility map
and freezes the new pages, and the ANALYZE that comes with it refreshes the statistics. The
server's default pace spends that work in one burst. Measured on this machine (Postgres 15,
60,000 new events written 200 to a transaction, then VACUUM ANALYZE):
- events: 1.1-1.3 s at 0.16-0.19 cores at 2 ms; 4.9-5.5 s at 0.05-0.06 cores at 10 ms;
- the timeline: 0.36-0.43 s at 0.31-0.32 cores at 2 ms; 1.4-1.5 s at 0.10-0.11 cores at 10 ms.
The CPU in all is about the same. In bench_system's open loop, autovacuum ran events and then the
timeline once a minute while they grew, at 0.34-0.49 cores, and that second held the run's worst
answers: 112 ms at p99 against 10 ms in the seconds around it, on an otherwise quiet machine.
At 10 ms a worker still gets through about 1,000 new pages a second, 12,000 events of this size.

Tables with updates or deletes (outbox, streams, the summaries) keep the server's pace: their
dead rows are what slows their readers. A rebuild carries these settings to the tables it
makes live (projections/rebuild/shadow.py copies each table's storage parameters).

Revision ID: 0016
Revises: 0015
"""

from eventstore.migrations import run_script

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("events", "session_timeline_v1", "conversation_items_v1", "state_audit_v1", "model_usage_v1")
COST_DELAY_MS = 10


def upgrade() -> None:
    run_script(
        "\n".join(f"ALTER TABLE {table} SET (autovacuum_vacuum_cost_delay = {COST_DELAY_MS});" for table in TABLES)
    )


def downgrade() -> None:
    run_script("\n".join(f"ALTER TABLE {table} RESET (autovacuum_vacuum_cost_delay);" for table in TABLES))
