"""Agent frameworks' records as commands: a thread's or a conversation's first record starts its
session; deleting a thread with nothing live, popping or clearing an empty conversation yields no
event; closed sessions refuse; values are validated at the edge; the fold's memory stays small."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from commands import models as cmd
from eventstore import events as ev
from eventstore.errors import SessionClosedError, SessionNotFoundError, ValidationProblemError
from eventstore.history import describe
from eventstore.state import SessionState, fold

from .session_spec import given

STARTED = ev.SessionStarted(workflow="langgraph")
BYTES = {"kind": "bytes", "type": "msgpack", "base64": "gqJpZA=="}


def put(**overrides) -> cmd.PutGraphCheckpoint:
    fields = {
        "thread_id": "t",
        "checkpoint_id": "c1",
        "checkpoint": {"v": 4, "id": "c1", "channel_values": {"n": 1}},
        "metadata": {"step": 0, "source": "loop"},
        "blobs": [{"channel": "msgs", "version": "1.5", "value": BYTES}],
    }
    return cmd.PutGraphCheckpoint(**{**fields, **overrides})


def writes() -> cmd.PutGraphWrites:
    return cmd.PutGraphWrites(
        thread_id="t",
        checkpoint_id="c1",
        task_id="k",
        task_path="~__pregel_pull, approve",
        writes=[{"idx": -3, "channel": "__interrupt__", "value": BYTES}],
    )


PUT = ev.GraphCheckpointPut(**put().model_dump(exclude={"type", "workflow"}))
WRITES = ev.GraphWritesPut(**writes().model_dump(exclude={"type", "workflow"}))


def test_a_threads_first_checkpoint_or_write_starts_its_session():
    given().when(put()).then(STARTED, PUT)
    given().when(writes()).then(STARTED, WRITES)
    given().when(put(workflow="refunds")).then(ev.SessionStarted(workflow="refunds"), PUT)
    given(STARTED).when(put(), writes()).then(PUT, WRITES)


def test_a_closed_session_refuses_graph_records():
    given(STARTED, ev.SessionCompleted()).when(put()).then_raises(SessionClosedError, "session_closed")
    given(STARTED, ev.SessionCompleted()).when(writes()).then_raises(SessionClosedError, "session_closed")


def test_deleting_a_thread_hides_it_once_and_a_thread_never_written_is_not_found():
    delete = cmd.DeleteGraphThread(thread_id="t")
    given(STARTED, PUT).when(delete).then(ev.GraphThreadDeleted(thread_id="t"))
    given(STARTED, PUT, ev.GraphThreadDeleted(thread_id="t")).when(delete).then_nothing()
    given(STARTED, PUT, ev.GraphThreadDeleted(thread_id="t"), WRITES).when(delete).then(
        ev.GraphThreadDeleted(thread_id="t")
    )
    given().when(delete).then_raises(SessionNotFoundError, "session_not_found")


def test_conversation_items_are_numbered_on_across_pops_and_clears():
    add = cmd.AddConversationItems(items=[{"role": "user", "content": "hi"}, {"role": "user", "content": "2"}])
    first = ev.ConversationItemsAdded(first_index=0, items=add.items)
    given().when(add).then(ev.SessionStarted(workflow="openai-agents"), first)
    after = given(STARTED, first, ev.ConversationItemPopped(index=1), ev.ConversationCleared())
    after.when(add).then(ev.ConversationItemsAdded(first_index=2, items=add.items))


def test_pop_and_clear_of_nothing_yield_no_event_and_an_index_beyond_the_items_is_refused():
    one = ev.ConversationItemsAdded(first_index=0, items=[{"role": "user", "content": "hi"}])
    given(STARTED, one).when(cmd.PopConversationItem(index=0)).then(ev.ConversationItemPopped(index=0))
    given(STARTED, one, ev.ConversationItemPopped(index=0)).when(cmd.PopConversationItem(index=0)).then_nothing()
    given(STARTED, one, ev.ConversationCleared()).when(cmd.ClearConversation()).then_nothing()
    given(STARTED, one).when(cmd.ClearConversation()).then(ev.ConversationCleared())
    refused = given(STARTED, one).when(cmd.PopConversationItem(index=5))
    assert [e["field"] for e in refused.then_raises(ValidationProblemError, "invalid_input").extra["errors"]] == [
        "index"
    ]
    given().when(cmd.ClearConversation()).then_raises(SessionNotFoundError, "session_not_found")


def test_the_fold_keeps_two_counts_and_a_flag_through_its_snapshot():
    items = ev.ConversationItemsAdded(first_index=0, items=[{"role": "user", "content": str(i)} for i in range(3)])
    state = fold([STARTED, PUT, items, ev.ConversationItemPopped(index=2)], SessionState.new("s", "t"))
    assert (state.conversation_added, state.conversation_live, state.graph_live) == (3, 2, True)
    assert SessionState.from_snapshot(state.to_snapshot()) == state
    old = {k: v for k, v in state.to_snapshot().items() if k not in ("conversation_memory", "graph_live")}
    assert SessionState.from_snapshot(old).conversation_added == 0  # a snapshot from before: empty memories


@pytest.mark.parametrize(
    "value",
    [
        {"kind": "bytes", "type": "msgpack"},  # no bytes
        {"kind": "bytes", "type": "msgpack", "base64": "not base64!"},
        {"kind": "json", "value": 1, "type": "msgpack"},
        {"kind": "empty", "value": 1},
        {"kind": "pickle", "value": 1},
        {"kind": "json", "value": "nul\x00"},
    ],
)
def test_a_stored_value_has_one_form(value):
    with pytest.raises(ValidationError):
        put(blobs=[{"channel": "c", "version": "1", "value": value}])


def test_history_lines_show_steps_writes_and_items():
    assert describe(PUT) == "graph step 0 (loop): updated msgs"
    assert describe(WRITES) == "graph approve wrote __interrupt__=<bytes msgpack>"
    added = ev.ConversationItemsAdded(
        first_index=4,
        items=[
            {"type": "function_call", "name": "refund", "arguments": '{"charge":"ch_2"}'},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]},
        ],
    )
    assert describe(added) == 'conversation items 4-5 added: call refund {"charge":"ch_2"}; assistant: Done.'
