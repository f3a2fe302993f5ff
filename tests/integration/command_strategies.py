"""Hypothesis strategies for every command of the command API, as a careless or hostile client
sends them (the values themselves come from json_strategies.py: extreme and non-finite numbers,
any unicode, deep and wide JSON, far dates), with values just under and just over each limit of
commands/models.py and valid and invalid ids.

A generated session is a `Script`: a start body and a few `Step`s (one HTTP request each) on the
same session. Ids are drawn from small pools, so tool results and decisions often find the call or
approval an earlier step opened, and state patches meet each other on a few keys with values
Python holds equal but JSON does not (1, 1.0, true). Clean values are drawn more often than
hostile ones, so both accepted and refused requests are well represented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.integration.json_strategies import (
    AWKWARD,
    EDGE_INTS,
    KIB,
    NON_FINITE,
    ODD_NUMBER_TEXTS,
    RETYPED,
    any_json,
    clean_text,
    colliding_patches,
    instants,
    mostly,
    near_limit_text,
    nested_colliding,
    objects,
    to_json_text,
)

AGENTS = ["billing", "account", "policy"]
CALL_IDS = ["c1", "c2", "c3"]
APPROVAL_IDS = ["a1", "a2"]
SECTIONS = ["sec", "billing", "x.y:z@w-1"]
ID_EDGE = ["a" * 128, "0._:@-Z"]
BAD_IDS = ["", "a" * 129, "a b", "-lead", "é", "a\x00", "tab\t", "line\n"]

valid_ids = st.sampled_from(ID_EDGE) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}", fullmatch=True)


def path_ids(pool: list[str]) -> st.SearchStrategy[str]:
    """Ids for a URL path segment: an empty one would name another route."""
    return ids(pool).filter(bool)


def ids(pool: list[str]) -> st.SearchStrategy[str]:
    return mostly(st.sampled_from(pool), 6, valid_ids, st.sampled_from(BAD_IDS))


names = mostly(clean_text.filter(bool), 4, near_limit_text(200, unit="chars"), st.sampled_from(AWKWARD))


def texts(limit_bytes: int) -> st.SearchStrategy[str]:
    return mostly(clean_text.filter(bool), 4, near_limit_text(limit_bytes), st.sampled_from(AWKWARD))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


steps_numbers = st.one_of(
    st.integers(0, 1000), st.sampled_from([-1, 2**31 - 1, *EDGE_INTS]), st.sampled_from(NON_FINITE + ODD_NUMBER_TEXTS)
)
durations = st.one_of(
    st.integers(0, 10_000), st.sampled_from([7 * 24 * 3600 * 1000, 7 * 24 * 3600 * 1000 + 1, -1, *EDGE_INTS])
)


def fields(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[dict]:
    """A body whose optional fields are present or absent (None-valued ones dropped)."""
    return st.fixed_dictionaries({}, optional=strategies).map(lambda d: {k: v for k, v in d.items() if v is not None})


# --- commands: the body of each endpoint, and the typed items of a batch --------------------

start_bodies = fields(
    workflow=ids(["support-case"]),
    title=names,
    agents=st.lists(ids(AGENTS), max_size=3)
    | st.builds(lambda n: [f"a{i}" for i in range(n)], st.sampled_from([64, 65])),
    allow_shared_sections=st.booleans(),
    metadata=objects(16 * KIB),
    labels=st.dictionaries(ids(["env"]), clean_text | near_limit_text(256, unit="chars"), max_size=3)
    | st.sampled_from([32, 33]).map(lambda n: {f"l{i}": "v" for i in range(n)}),
    started_by=names,
)
message = st.builds(
    lambda role, content, optional: {"role": role, "content": content, **optional},
    st.sampled_from(["user", "assistant", "system", "tool", "robot"]),
    texts(64 * KIB),
    fields(agent=ids(AGENTS)),
)
tool_call = st.builds(
    lambda required, optional: {**required, **optional},
    st.fixed_dictionaries({"tool": ids(["refund", "search"])}),
    fields(call_id=ids(CALL_IDS), arguments=objects(64 * KIB), agent=ids(AGENTS)),
)
completed = st.builds(
    lambda optional: {"status": "completed", **optional}, fields(result=any_json(256 * KIB), duration_ms=durations)
)
failed = st.builds(
    lambda error, optional: {"status": "failed", "error": error, **optional},
    texts(16 * KIB),
    fields(duration_ms=durations, retriable=st.booleans()),
)
checkpoint = st.builds(lambda name, optional: {"name": name, **optional}, names, fields(step=steps_numbers))
approval = st.builds(
    lambda action, by, optional: {"action": action, "requested_by": by, **optional},
    texts(4 * KIB),
    ids(AGENTS),
    fields(
        approval_id=ids(APPROVAL_IDS),
        risk=st.sampled_from(["low", "medium", "high", "critical", "extreme"]),
        expires_at=instants,
        details=objects(16 * KIB),
    ),
)
decision = st.builds(
    lambda d, reviewer, optional: {"decision": d, "reviewer": reviewer, **optional},
    st.sampled_from(["approved", "rejected", "maybe"]),
    names,
    fields(comment=texts(4 * KIB)),
)
error = st.builds(
    lambda message, optional: {"message": message, **optional},
    texts(16 * KIB),
    fields(agent=ids(AGENTS), kind=ids(["rate_limited"]), details=objects(16 * KIB)),
)
compensation = st.builds(
    lambda step, optional: {"step": step, **optional}, names, fields(reason=texts(4 * KIB), agent=ids(AGENTS))
)
complete = maybe(fields(outcome=ids(["resolved"]), summary=texts(16 * KIB)))
fail = st.builds(lambda reason: {"reason": reason}, texts(4 * KIB))
cancel = maybe(fields(reason=texts(4 * KIB), by=names))
patches = objects(64 * KIB)

# Model calls and context compactions: message items are messages (with a role) or references to
# what the session holds (eventstore/message_refs.py), some of them dangling or malformed.
MODEL_CALL_IDS = ["m1", "m2"]
COMPACTION_IDS = ["k1"]
tokens = st.integers(0, 10**6) | st.sampled_from([2**62, 2**62 + 1, 2**63, -1])
message_items = st.one_of(
    st.builds(
        lambda role, content: {"role": role, "content": content},
        st.sampled_from(["user", "assistant", "", "r" * 65]),
        any_json(4 * KIB),
    ),
    st.builds(lambda i: {"ref": "message", "index": i}, st.integers(0, 4) | st.sampled_from([-1, 2**63])),
    st.builds(
        lambda c, start, stop: {
            "ref": "call",
            "call_id": c,
            "start": start,
            **({} if stop is None else {"stop": stop}),
        },
        ids(MODEL_CALL_IDS),
        st.integers(0, 3),
        st.none() | st.integers(0, 4),
    ),
    st.builds(lambda c: {"ref": "response", "call_id": c}, ids(MODEL_CALL_IDS)),
    st.builds(lambda k: {"ref": "compaction", "compaction_id": k}, ids(COMPACTION_IDS)),
    st.sampled_from([{"ref": "nope"}, {"ref": "message", "index": 0, "role": "user"}, {}]),
)
tools = st.lists(
    st.one_of(
        st.builds(lambda n, p: {"name": n, "input_schema": p}, names, objects(4 * KIB)),
        st.just({"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}),
        st.just({"description": "no name"}),
    ),
    max_size=3,
)
model_request = fields(
    system=any_json(4 * KIB),
    system_from=ids(MODEL_CALL_IDS),
    messages=st.lists(message_items, max_size=4),
    tools=tools,
    tools_from=ids(MODEL_CALL_IDS),
    parameters=objects(16 * KIB),
)
model_call = st.builds(
    lambda model, request, optional: {"model": model, "request": request, **optional},
    names,
    model_request,
    fields(
        call_id=ids(MODEL_CALL_IDS),
        agent=ids(AGENTS),
        provider=ids(["openai", "anthropic"]),
        response=fields(
            content=any_json(16 * KIB),
            tool_calls=st.lists(objects(4 * KIB), max_size=2),
            finish_reason=names,
            error=texts(16 * KIB),
        ),
        usage=fields(input_tokens=tokens, output_tokens=tokens, cached_tokens=tokens),
        latency_ms=durations,
    ),
)
compaction = st.builds(
    lambda replaced, optional: {"replaced": replaced, **optional},
    st.lists(message_items, max_size=3),
    fields(
        compaction_id=ids(COMPACTION_IDS),
        agent=ids(AGENTS),
        kind=st.sampled_from(["summarized", "truncated", "forgotten"]),
        replacement=st.lists(message_items, max_size=3),
        reason=texts(4 * KIB),
    ),
)
FRESH_SESSION = "<fresh-session>"  # replaced by a session id no other request used
fork = st.builds(
    lambda at, optional: {"at_version": at, **optional},
    st.integers(1, 6) | st.sampled_from([0, -1, 2**62, 2**62 + 1, 2**63, True, 1.5]),
    fields(new_session_id=st.sampled_from([FRESH_SESSION, FRESH_SESSION, FRESH_SESSION, "a b", "a" * 129])),
)


def _typed(kind: str, body: st.SearchStrategy[dict], **url_fields: st.SearchStrategy[str]) -> st.SearchStrategy[dict]:
    return st.builds(lambda b, extra: {"type": kind, **b, **extra}, body, st.fixed_dictionaries(url_fields))


def _result_item(body: dict) -> dict:
    kind = "complete_tool_call" if body.pop("status") == "completed" else "fail_tool_call"
    return {"type": kind, **body}


batch_item = st.one_of(
    _typed("add_message", message),
    _typed("request_tool_call", tool_call),
    st.builds(lambda b, call_id: {**_result_item(dict(b)), "call_id": call_id}, completed | failed, ids(CALL_IDS)),
    st.builds(
        lambda p, agent, section: {"type": "update_state_section", "agent": agent, "section": section, "changes": p},
        patches,
        ids(AGENTS),
        ids(SECTIONS),
    ),
    _typed("save_checkpoint", checkpoint),
    _typed("request_approval", approval),
    _typed("decide_approval", decision, approval_id=ids(APPROVAL_IDS)),
    _typed("record_error", error),
    _typed("record_compensation", compensation),
    _typed("record_model_call", model_call),
    _typed("compact_context", compaction),
    st.sampled_from(
        [{"type": "complete_session"}, {"type": "cancel_session"}, {"type": "fail_session", "reason": "r"}]
    ),
    st.sampled_from([{"type": "start_session"}, {"type": "fork_session"}, {"type": "nope"}, {}]),
)


def _big_message(n: int) -> dict:
    return {"type": "add_message", "role": "user", "content": "x" * (64 * KIB - 100 + n % 2)}


def _big_patch(i: int) -> dict:
    return {"type": "update_state_section", "agent": "billing", "section": "big", "changes": {f"k{i}": "y" * 60_000}}


# Bodies around the 1 MiB body limit (16 messages of ~64 KiB fit, 17 do not) and state around its
# 1 MiB limit (16 patches of 60 kB fit in one body; a later one in the same session may not).
big_batches = st.sampled_from([15, 16, 17]).map(lambda n: {"commands": [_big_message(i) for i in range(n)]}) | st.just(
    {"commands": [_big_patch(i) for i in range(16)]}
)
batches = st.one_of(
    st.lists(batch_item, min_size=1, max_size=4).map(lambda items: {"commands": items}),
    st.lists(batch_item, min_size=1, max_size=4).map(lambda items: {"commands": items}),
    st.sampled_from([{"commands": []}, {"commands": [{"type": "add_message", "role": "user", "content": "x"}] * 101}]),
    big_batches,
)


FRESH_KEY = "<fresh>"  # replaced by a key no other request used
SHARED_KEY = "shared-key"  # one key for many requests: all but the first are refused as reused


@dataclass(frozen=True)
class Step:
    """One request on the script's session; `path` is relative to /v1/sessions/{id}."""

    method: str
    path: str
    body: Any = None  # None: no body at all
    ascii_only: bool = True
    merge_patch_media_type: bool = False
    idempotency_key: str | None = None  # FRESH_KEY: a key of this step's own
    repeat: bool = False  # send it twice with the same Idempotency-Key
    section: str | None = None  # the section a state PATCH names in its path
    on_fork: bool = False  # sent to the latest fork of the session, if there is one

    def text(self) -> str | None:
        return None if self.body is None else to_json_text(self.body, ascii_only=self.ascii_only)


@dataclass(frozen=True)
class Script:
    start: dict
    steps: list[Step] = field(default_factory=list)
    start_ascii_only: bool = True


def _path_id(value: str) -> str:
    return quote(value, safe="")


@st.composite
def _step(draw, method: str, path: st.SearchStrategy[str], body: st.SearchStrategy[Any]) -> Step:
    key = draw(st.sampled_from([*[None] * 8, FRESH_KEY, FRESH_KEY, FRESH_KEY, SHARED_KEY]))
    return Step(
        method,
        draw(path),
        draw(body),
        ascii_only=draw(st.booleans()),
        idempotency_key=key,
        repeat=key is not None and draw(st.booleans()),
        on_fork=draw(st.integers(0, 3)) == 2,
    )


def _owner_patch(body: dict) -> Step:
    return Step("PATCH", "/state/sec?agent=billing", body, section="sec")


@st.composite
def _patch_step(draw, body: st.SearchStrategy[Any] = patches, owner: str | None = None) -> Step:
    """A state PATCH; with `owner`, by that agent on section "sec", so patches meet each other."""
    section, agent = ("sec", owner) if owner else (draw(path_ids(SECTIONS)), draw(ids(AGENTS)))
    return Step(
        "PATCH",
        f"/state/{_path_id(section)}?agent={_path_id(agent)}",
        draw(body),
        ascii_only=draw(st.booleans()),
        merge_patch_media_type=draw(st.booleans()),
        section=section,
        on_fork=owner is None and draw(st.integers(0, 3)) == 2,
    )


working_steps = st.one_of(
    _step("POST", st.just("/messages"), message),
    _step("POST", st.just("/tool-calls"), tool_call),
    _step("POST", path_ids(CALL_IDS).map(lambda c: f"/tool-calls/{_path_id(c)}/result"), completed | failed),
    _patch_step(),
    _patch_step(colliding_patches | nested_colliding, owner="billing"),
    _patch_step(colliding_patches | nested_colliding, owner="billing"),
    _patch_step(colliding_patches, owner="billing"),
    _step("POST", st.just("/checkpoints"), checkpoint),
    _step("POST", st.just("/approvals"), approval),
    _step("POST", path_ids(APPROVAL_IDS).map(lambda a: f"/approvals/{_path_id(a)}/decision"), decision),
    _step("POST", st.just("/errors"), error),
    _step("POST", st.just("/compensations"), compensation),
    _step("POST", st.just("/commands"), batches),
    _step("POST", st.just("/model-calls"), model_call),
    _step("POST", st.just("/model-calls"), model_call),
    _step("POST", st.just("/compactions"), compaction),
    _step("POST", st.just("/fork"), fork),
)
closing_steps = st.one_of(
    _step("POST", st.just("/complete"), complete),
    _step("POST", st.just("/fail"), fail),
    _step("POST", st.just("/cancel"), cancel),
)


@st.composite
def scripts(draw) -> Script:
    """A session: a start, two to eight working steps, and sometimes a closing step (rarely in the
    middle, so some steps meet a closed session)."""
    steps = draw(st.lists(working_steps, min_size=2, max_size=8))
    # Hypothesis favours small integers, so a branch taken "one time in n" tests for a middle value.
    if draw(st.integers(0, 4)) == 2:
        first, second = draw(st.sampled_from(RETYPED))
        at = draw(st.integers(0, len(steps)))
        steps[at:at] = [_owner_patch({"a": first}), _owner_patch({"a": second})]
    if draw(st.integers(0, 3)) == 2:  # a fork in the middle: later steps may go to it (on_fork)
        at = draw(st.integers(0, len(steps)))
        steps.insert(at, Step("POST", "/fork", {"at_version": at + 1, "new_session_id": FRESH_SESSION}))
    if draw(st.integers(0, 6)) == 3:
        steps.insert(draw(st.integers(0, len(steps))), draw(closing_steps))
    if draw(st.integers(0, 2)) == 1:
        steps.append(draw(closing_steps))
    return Script(start=draw(start_bodies), steps=steps, start_ascii_only=draw(st.booleans()))
