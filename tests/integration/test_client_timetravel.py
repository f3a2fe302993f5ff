"""The client's time-travel methods against the real command and query APIs (relay and projector
between them): model calls and compactions recorded through the client and rebuilt by `context`,
a fork made over HTTP, then the state at a version, diff against the fork, blame, the model-call
list and the forks list, each answered as typed objects; unknown calls and versions out of range
as typed errors."""

from __future__ import annotations

import pytest

from agentlog.client import InvalidRequestError, NotFoundError
from agentlog.client import commands as cmd
from tests.integration.client_support import Either
from tests.integration.test_client_api import new_id


async def test_client_records_model_calls_and_rebuilds_their_context(either: Either) -> None:
    sid = new_id()
    await either.start_session(sid, agents=["support"])
    await either.add_message(sid, "user", "I was charged twice")
    first = await either.record_model_call(
        sid,
        "gpt-test",
        cmd.ModelRequest(system="be brief", messages=[{"ref": "message", "index": 0}]),
        response=cmd.ModelResponse(content="Let me check.", finish_reason="stop"),
        usage=cmd.ModelUsage(input_tokens=12, output_tokens=4),
        call_id="m1",
        agent="support",
        provider="openai",
        latency_ms=35,
    )
    await either.compact_context(
        sid,
        [{"ref": "call", "call_id": "m1"}, {"ref": "response", "call_id": "m1"}],
        replacement=[{"role": "system", "content": "user reports a double charge"}],
        compaction_id="k1",
        agent="support",
    )
    await either.run_commands(
        sid,
        [
            cmd.AddMessage(role="user", content="any news?"),
            cmd.RecordModelCall(
                model="gpt-test",
                request={"system_from": "m1", "messages": [{"ref": "compaction", "compaction_id": "k1"}]},
                call_id="m2",
            ),
        ],
    )
    assert first.version == 3

    calls = await either.model_calls(sid)
    assert [(c.call_id, c.messages, c.usage.input_tokens, c.latency_ms) for c in calls] == [
        ("m1", 1, 12, 35),
        ("m2", 1, None, None),
    ]
    page = await either.model_calls_page(sid, limit=1)
    assert (page.last_version, [c.call_id for c in page.items], page.next_cursor is not None) == (6, ["m1"], True)
    context = await either.context(sid, "m2")
    assert context.request.system == "be brief"
    assert context.request.messages == ({"role": "system", "content": "user reports a double charge"},)
    assert (await either.context(sid, at_version=3)).response.content == "Let me check."
    body = await either.context_body(sid, "openai", "m1")
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "I was charged twice"},
    ]
    with pytest.raises(NotFoundError):
        await either.context(sid, "no-such-call")
    with pytest.raises(InvalidRequestError) as dangling:
        await either.record_model_call(sid, "gpt-test", {"messages": [{"ref": "call", "call_id": "m9"}]})
    assert dangling.value.status == 422


async def test_client_forks_then_reads_state_at_a_version_diff_blame_and_forks(either: Either) -> None:
    sid, fork = new_id(), new_id("fork")
    await either.start_session(sid, agents=["billing"])
    await either.add_message(sid, "user", "refund please")
    await either.update_state(sid, "billing", {"amount": 42}, agent="billing")
    await either.update_state(sid, "billing", {"refunded": True}, agent="billing")

    forked = await either.fork_session(sid, at_version=3, new_session_id=fork)
    assert (forked.session_id, forked.version) == (fork, 1)
    await either.update_state(fork, "billing", {"refunded": False, "note": "denied"}, agent="billing")

    then = await either.state_at(sid, 3)
    assert (then.version, then.last_version, then.status) == (3, 4, "open")
    assert then.sections == {"billing": {"amount": 42}}
    assert [(m.role, m.content) for m in then.conversation] == [("user", "refund please")]

    changes = await either.diff(sid, 4, other=fork)
    assert (changes.left.version, changes.right.session_id, changes.common_steps) == (4, fork, 3)
    changed = {c.path: (c.old, c.new) for c in changes.state.changed}
    assert changed["/sections/billing/refunded"] == (True, False)
    assert [a.path for a in changes.state.added] == ["/sections/billing/note"]
    assert [(p.step, p.left.type if p.left else None, p.same) for p in changes.events] == [
        (4, "StateSectionUpdated", False)
    ]
    own = await either.diff(sid, 2, 3)
    assert "/sections/billing" in [a.path for a in own.state.added]

    blamed = {e.path: (e.session_id, e.version) for e in (await either.blame(fork, section="billing")).entries}
    assert blamed == {
        "/sections/billing/amount": (sid, 3),  # inherited: blamed on the source's event
        "/sections/billing/refunded": (fork, 2),
        "/sections/billing/note": (fork, 2),
    }
    assert [e.path for e in (await either.blame(sid, at_version=3)).entries if e.path.startswith("/sections")] == [
        "/sections/billing/amount"
    ]

    # /forks lists the read models: the client's bound (its last write's position) makes it list
    # the fork at once, though every read above folded the log and waited for no projection
    forks = await either.forks(sid)
    assert [(f.session_id, f.forked_from_version) for f in forks] == [(fork, 3)]
    with pytest.raises(InvalidRequestError) as beyond:
        await either.state_at(sid, 99)
    assert [e.field for e in beyond.value.errors] == ["query.at_version"]
    with pytest.raises(InvalidRequestError) as refused:
        await either.fork_session(sid, at_version=99)
    assert [e.field for e in refused.value.errors] == ["at_version"]
    with pytest.raises(NotFoundError):
        await either.diff(new_id(), 1)
