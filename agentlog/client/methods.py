"""The public methods of both clients: one line each, binding a method name to the function that
builds its call (writes.py for the command API, queries.py for the query API).

A `..._page` method returns one Page (with `next_cursor`); its twin without the suffix iterates
over every item of every page (sync: a generator; async: an async generator).
"""

from __future__ import annotations

from agentlog.client import queries, writes
from agentlog.client.binding import Operation, Paged


class Methods:
    # commands (each returns a WriteResult)
    start_session = Operation(writes.start_session)
    add_message = Operation(writes.add_message)
    request_tool_call = Operation(writes.request_tool_call)
    complete_tool_call = Operation(writes.complete_tool_call)
    fail_tool_call = Operation(writes.fail_tool_call)
    update_state = Operation(writes.update_state)
    save_checkpoint = Operation(writes.save_checkpoint)
    request_approval = Operation(writes.request_approval)
    decide_approval = Operation(writes.decide_approval)
    record_error = Operation(writes.record_error)
    record_compensation = Operation(writes.record_compensation)
    complete_session = Operation(writes.complete_session)
    fail_session = Operation(writes.fail_session)
    cancel_session = Operation(writes.cancel_session)
    run_commands = Operation(writes.run_commands)
    fork_session = Operation(writes.fork_session)
    record_model_call = Operation(writes.record_model_call)
    compact_context = Operation(writes.compact_context)
    put_graph_checkpoint = Operation(writes.put_graph_checkpoint)
    put_graph_writes = Operation(writes.put_graph_writes)
    delete_graph_thread = Operation(writes.delete_graph_thread)
    add_conversation_items = Operation(writes.add_conversation_items)
    pop_conversation_item = Operation(writes.pop_conversation_item)
    clear_conversation = Operation(writes.clear_conversation)

    # queries
    get_session = Operation(queries.get_session)
    get_state = Operation(queries.get_state)
    list_sessions = Paged(queries.list_sessions)
    list_sessions_page = Operation(queries.list_sessions)
    timeline = Paged(queries.timeline)
    timeline_page = Operation(queries.timeline)
    events_after = Operation(queries.events_after)
    tool_calls = Paged(queries.tool_calls)
    tool_calls_page = Operation(queries.tool_calls)
    audit = Paged(queries.audit)
    audit_page = Operation(queries.audit)
    approvals = Paged(queries.approvals)
    approvals_page = Operation(queries.approvals)
    tool_stats = Operation(queries.tool_stats)
    usage = Operation(queries.usage)

    # time travel (folds of the event store, current as soon as a write answered)
    state_at = Operation(queries.state_at)
    diff = Operation(queries.diff)
    blame = Operation(queries.blame)
    model_calls = Paged(queries.model_calls)
    model_calls_page = Operation(queries.model_calls)
    context = Operation(queries.context)
    context_body = Operation(queries.context_body)
    forks = Paged(queries.forks)
    forks_page = Operation(queries.forks)

    # agent frameworks' records (agentlog.integrations)
    graph_checkpoints = Operation(queries.graph_checkpoints)
    all_graph_checkpoints = Operation(queries.all_graph_checkpoints)
    conversation_items = Operation(queries.conversation_items)
