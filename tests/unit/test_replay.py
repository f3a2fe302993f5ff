"""Pure replay: ordering and dedupe of any source, targets (version, time, checkpoint), steps with
snapshot diffs, history lines, and the errors a user sees. No services."""

from __future__ import annotations

import dataclasses
import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.errors import ReplaySourceIncompleteError, ReplayTargetError, SessionNotFoundError
from eventstore.history import history_entry, summary
from eventstore.registry import to_stored
from eventstore.replay import Target, ordered, parse_time, replay, resolve, steps
from eventstore.snapshot_diff import diff_snapshots
from eventstore.state import SessionState, fold

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CASE = [
    ev.SessionStarted(workflow="support-case", agents=["billing", "account"]),
    ev.MessageAdded(role="user", content="I was charged twice, and I can't log in"),
    ev.StateSectionUpdated(agent="billing", section="billing", changes={"dup": "ch_2"}),
    ev.CheckpointSaved(name="triaged", step=1),
    ev.ToolCallRequested(call_id="c1", tool="payments.refund", arguments={"charge": "ch_2"}, agent="billing"),
    ev.ToolCallCompleted(call_id="c1", result={"refund_id": "re_7"}, duration_ms=812),
    ev.CheckpointSaved(name="triaged", step=2),
    ev.StateSectionUpdated(agent="billing", section="billing", changes={"dup": None, "refund": "re_7"}),
    ev.SessionCompleted(outcome="resolved"),
]


def recorded(events=CASE, session_id="case-42", tenant="acme") -> list[RecordedEvent]:
    rows = []
    for version, event in enumerate(events, start=1):
        event_type, schema_version, data = to_stored(event)
        rows.append(
            RecordedEvent(
                position=1000 + version,
                session_id=session_id,
                version=version,
                event_id=uuid.uuid4(),
                type=event_type,
                schema_version=schema_version,
                data=data,
                tenant=tenant,
                recorded_at=T0 + timedelta(seconds=10 * version),
                metadata={"actor": "key_1"},
            )
        )
    return rows


RECORDED = recorded()


def test_replay_to_the_end_equals_the_fold_of_all_events():
    result = replay(RECORDED)
    assert result.state == fold(RECORDED)
    assert (result.version, result.last_version, result.state.status) == (9, 9, "completed")


def test_replay_to_version_equals_the_fold_of_the_first_n_events():
    for n in range(1, len(RECORDED) + 1):
        result = replay(RECORDED, Target("version", n))
        assert result.state == fold(RECORDED[:n]) and result.last_event.version == n


def test_replay_to_version_beyond_the_end_names_the_last_version():
    with pytest.raises(ReplayTargetError, match="versions 1 to 9") as caught:
        replay(RECORDED, Target("version", 10))
    assert caught.value.extra["last_version"] == 9


def test_replay_at_time_takes_the_last_event_recorded_at_or_before_it():
    assert resolve(RECORDED, Target("time", T0 + timedelta(seconds=30))) == 3
    assert resolve(RECORDED, Target("time", T0 + timedelta(seconds=39))) == 3
    assert resolve(RECORDED, Target("time", T0 + timedelta(days=1))) == 9


def test_replay_at_time_before_the_first_event_is_an_error():
    with pytest.raises(ReplayTargetError, match="before the session's first event"):
        resolve(RECORDED, Target("time", T0))


def test_replay_to_checkpoint_includes_the_last_checkpoint_of_that_name():
    result = replay(RECORDED, Target("checkpoint", "triaged"))
    assert result.version == 7
    assert result.state.last_checkpoint == {"name": "triaged", "step": 2, "version": 7}


def test_replay_to_unknown_checkpoint_lists_the_checkpoints_there_are():
    with pytest.raises(ReplayTargetError, match=r"checkpoints: triaged\)") as caught:
        resolve(RECORDED, Target("checkpoint", "refunded"))
    assert caught.value.extra["checkpoints"] == ["triaged"]


def test_parse_time_reads_zulu_offsets_and_takes_naive_times_as_utc():
    assert parse_time("2025-03-01T12:00:30Z") == T0 + timedelta(seconds=30)
    assert parse_time("2025-03-01T13:00:30+01:00") == T0 + timedelta(seconds=30)
    assert parse_time("2025-03-01 12:00:30") == T0 + timedelta(seconds=30)


def test_parse_time_rejects_what_is_not_iso_8601():
    with pytest.raises(ReplayTargetError, match="not an ISO 8601 time"):
        parse_time("yesterday")


def test_ordered_removes_duplicates_and_sorts_by_version():
    shuffled = RECORDED + RECORDED[2:5]  # at-least-once delivery repeats records
    random.Random(7).shuffle(shuffled)
    assert ordered(shuffled, session_id="case-42") == RECORDED


def test_ordered_refuses_a_missing_version():
    with pytest.raises(ReplaySourceIncompleteError, match="version 4 is missing"):
        ordered(RECORDED[:3] + RECORDED[4:], session_id="case-42")


def test_ordered_refuses_two_different_events_at_one_version():
    twin = dataclasses.replace(RECORDED[1], event_id=uuid.uuid4())
    with pytest.raises(ReplaySourceIncompleteError, match="two events at version 2"):
        ordered([*RECORDED, twin], session_id="case-42")


def test_ordered_of_nothing_is_an_unknown_session():
    with pytest.raises(SessionNotFoundError, match="'nope' not found"):
        ordered([], session_id="nope")


def test_steps_diff_each_snapshot_with_the_one_before():
    all_steps = list(steps(RECORDED))
    assert [s.event.version for s in all_steps] == list(range(1, 10))
    assert all_steps[-1].after == fold(RECORDED).to_snapshot()
    for earlier, later in itertools.pairwise(all_steps):
        assert later.before == earlier.after
    patch = all_steps[7].diff  # dup removed, refund added, in section billing
    assert patch.added == {"/sections/billing/refund": "re_7"}
    assert patch.removed == {"/sections/billing/dup": "ch_2"}
    assert patch.changed == {"/version": (7, 8)}


def test_steps_stop_at_the_target_and_report_progress():
    seen = []
    all_steps = list(steps(RECORDED, Target("version", 5), progress=lambda d, t: seen.append((d, t))))
    assert len(all_steps) == 5 and seen[-1] == (5, 5)
    assert all_steps[4].diff.added == {"/open_calls/c1": "payments.refund"}


def test_diff_escapes_pointer_characters_and_compares_arrays_whole():
    diff = diff_snapshots({"a/b": {"~x": 1}, "l": [1, 2]}, {"a/b": {"~x": 2}, "l": [1, 2, 3]})
    assert diff.changed == {"/a~1b/~0x": (1, 2), "/l": ([1, 2], [1, 2, 3])}
    assert diff.to_json()["changed"][0] == {"path": "/a~1b/~0x", "from": 1, "to": 2}


def test_diff_counts_a_boolean_replacing_an_equal_number_as_a_change():
    assert diff_snapshots({"x": 1}, {"x": True}).changed == {"/x": (1, True)}
    assert not diff_snapshots({"x": {"y": [1]}}, {"x": {"y": [1]}})


def test_history_entry_names_actor_agent_and_a_one_line_summary():
    entry = history_entry(RECORDED[4])
    assert entry["type"] == "ToolCallRequested" and entry["version"] == 5
    assert (entry["actor"], entry["agent"]) == ("key_1", "billing")
    assert entry["summary"] == 'call c1: payments.refund {"charge":"ch_2"}'
    assert summary(RECORDED[5]) == 'call c1 completed in 812 ms: {"refund_id":"re_7"}'


def test_history_summary_survives_an_event_this_build_cannot_decode():
    alien = dataclasses.replace(RECORDED[0], type="FromTheFuture", data={"x": "line\nbreak"})
    assert summary(alien) == '[unknown_event_type] {"x":"line\\nbreak"}'


def test_fold_of_a_replayed_fork_starts_from_the_source_state():
    source = replay(RECORDED, Target("version", 5)).state
    forked = ev.SessionForked(source_session_id="case-42", source_version=5, state=source.to_snapshot())
    fork_state = fold(recorded([forked], session_id="case-42-b"))
    assert fork_state.sections == source.sections and fork_state.open_calls == source.open_calls
    assert fork_state.forked_from == {"session_id": "case-42", "version": 5}
    assert (fork_state.session_id, fork_state.version) == ("case-42-b", 1)
    assert SessionState.from_snapshot(fork_state.to_snapshot()) == fork_state
