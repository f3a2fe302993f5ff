"""Time travel over HTTP (query API): a session's state at a version, diff, blame, model calls,
the exact request of a model call, and the sessions forked from it.

Invariant: these answers are folds of the event store, the source of truth, not of the read
models (except /forks, which lists the summaries' lineage and so takes the read-your-writes bound
of the other read-model reads, `min_version` / `min_position`): they are current when the command
that wrote them answered, so they need no read-your-writes wait. Every read is scoped to the
caller's tenant (another tenant's session is 404, like an unknown one), follows a fork's lineage
to its source (eventstore/lineage.py), and refuses a version the session does not have with a
422 naming the parameter; an unknown model call is 404. Answers are rendered once, by orjson
(FastJSONResponse), not through FastAPI's jsonable_encoder: they can be as large as the session
(the state at the end of the 100,000-event bench session is 12.6 MB: 3.0 s of CPU encoded that
way, 40 ms by orjson).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from agentlog.edge.keys import Principal
from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems, success
from agentlog.edge.responses import FastJSONResponse
from eventstore.diff_store import diff_on_store
from eventstore.errors import ReplayTargetError, SessionNotFoundError, ValidationProblemError
from eventstore.fold_snapshots import FoldPoint, fold_to
from eventstore.ids import ID_MAX_LENGTH, ID_PATTERN, validate_session_id
from eventstore.knowledge import Knowledge
from eventstore.large_reads import gc_paused
from eventstore.provider_formats import as_format
from eventstore.store import EventStore
from projections.api import answers, pagination
from projections.api.deps import BIGINT_MAX, MinPosition, MinVersion, Reads, SessionId, WaitMs, principal, reads
from projections.read_models import summaries

# Folds of the store: no read-your-writes wait, so no 504 (but /forks, a read-model read); an unknown
# session (or call) is 404.
router = APIRouter(
    prefix="/v1/sessions",
    tags=["time travel"],
    responses=problems(404, 422, *AUTHENTICATED),
    generate_unique_id_function=operation_id,
)

Version = Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="a version of the session (default: its last)")]
Id = Annotated[str, Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


async def _fold_point(
    r: Reads,
    tenant: str,
    session_id: str,
    version: int | None,
    field: str,
    *,
    knowledge: bool = False,
    id_field: str = "path.session_id",
) -> tuple[FoldPoint, int]:
    """(the fold of the session's lineage up to `version`, its last version), starting at the
    nearest fold snapshot (eventstore/fold_snapshots.py), with what the agents knew when
    `knowledge`; 404 / 422 as for `_checked`."""
    store, last = await _checked(r, tenant, session_id, version, field, id_field)
    blame = not knowledge
    return await fold_to(store, tenant, session_id, version or last, with_blame=blame, with_knowledge=knowledge), last


def _knowledge(point: FoldPoint) -> Knowledge:
    assert point.knowledge is not None  # fold_to(with_knowledge=True) always has it
    return point.knowledge


async def _checked(
    r: Reads, tenant: str, session_id: str, version: int | None, field: str, id_field: str
) -> tuple[EventStore, int]:
    """(the store, the session's last version) once the session exists in the tenant and `version`
    is within it; 404 / 422 otherwise."""
    validate_session_id(session_id, field=id_field)
    store = EventStore(r.pool)
    last = await store.last_version(tenant, session_id)  # no command-side snapshot to decode
    if last == 0:
        raise SessionNotFoundError(f"session {session_id!r} not found", session_id=session_id)
    if version is not None and version > last:
        raise ValidationProblemError(
            f"version {version} is outside the session {session_id}, which has versions 1 to {last}",
            errors=[{"field": field, "reason": f"must be between 1 and {last}"}],
            last_version=last,
        )
    return store, last


def _head(session_id: str, version: int, last: int) -> dict[str, Any]:
    return {"session_id": session_id, "version": version, "last_version": last}


async def state_at(r: Reads, tenant: str, session_id: str, at_version: int) -> FastJSONResponse:
    """GET /v1/sessions/{id}/state?at_version=N: the replayed state and what the agents knew,
    from the nearest fold snapshot at or before N."""
    with gc_paused():  # an answer as large as the session (eventstore/large_reads.py)
        return await _state_at(r, tenant, session_id, at_version)


async def _state_at(r: Reads, tenant: str, session_id: str, at_version: int) -> FastJSONResponse:
    # what it read is freed when it returns, inside the pause: so the collector, resumed, finds
    # only the rendered answer (so for the other handlers' helpers below)
    point, last = await _fold_point(r, tenant, session_id, at_version, "query.at_version", knowledge=True)
    state = point.state
    return FastJSONResponse(
        {
            **_head(session_id, point.version, last),
            "status": state.status,
            "sections": dict(state.sections),
            "state": state.to_snapshot(share=True),
            **_knowledge(point).transcript().to_json(),
        }
    )


@router.get(
    "/{session_id}/diff",
    response_model=None,
    responses=success(200, answers.Diff, "state changes and step-aligned events between two versions"),
)
async def get_diff(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    from_: Annotated[int, Query(alias="from", ge=1, le=BIGINT_MAX, description="the left version")],
    to: Version = None,
    other: Annotated[str | None, Query(max_length=ID_MAX_LENGTH, description="the right side's session")] = None,
) -> FastJSONResponse:
    """State changes (JSON Pointer paths) and step-aligned events from `from` to `to` (of `other`,
    e.g. a fork, when given: aligned at the fork point)."""
    with gc_paused():  # an answer as large as the session (eventstore/large_reads.py)
        await _checked(r, who.tenant, session_id, from_, "query.from", "path.session_id")
        right_id = other or session_id
        store, right_last = await _checked(
            r, who.tenant, right_id, to, "query.to", "query.other" if other else "path.session_id"
        )
        result = await diff_on_store(store, who.tenant, (session_id, from_), (right_id, to or right_last))
        return FastJSONResponse(result.to_json())


@router.get(
    "/{session_id}/blame",
    response_model=None,
    responses=success(200, answers.BlameAnswer, "the event that last set each leaf of the state"),
)
async def get_blame(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    section: Annotated[str | None, Query(max_length=ID_MAX_LENGTH, pattern=pagination.NO_NUL)] = None,
    at_version: Version = None,
) -> FastJSONResponse:
    """For each leaf of the state (at `at_version`), the event that last set it."""
    point, last = await _fold_point(r, who.tenant, session_id, at_version, "query.at_version")
    version = point.version
    try:
        entries = point.blame.result(section).to_json()
    except ReplayTargetError as exc:
        raise ValidationProblemError(exc.detail, errors=[{"field": "query.section", "reason": exc.detail}]) from None
    return FastJSONResponse({**_head(session_id, version, last), "section": section, "entries": entries})


@router.get(
    "/{session_id}/model-calls",
    response_model=None,
    responses=success(200, answers.ModelCalls, "a page of model-call summaries"),
)
async def get_model_calls(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    limit: Limit = 100,
    cursor: Cursor = None,
) -> FastJSONResponse:
    """Model-call summaries in order (a fork's inherited calls first), paged."""
    after = pagination.decode(cursor, "model-calls", (int,))
    with gc_paused():  # it reads what the agents knew, as large as the session (eventstore/large_reads.py)
        return await _model_calls(r, who.tenant, session_id, after[0] if after else 0, limit)


async def _model_calls(r: Reads, tenant: str, session_id: str, start: int, limit: int) -> FastJSONResponse:
    point, last = await _fold_point(r, tenant, session_id, None, "query.at_version", knowledge=True)
    index = _knowledge(point).index
    calls = list(index.calls.values())
    items = [index.summary(call) for call in calls[start : start + limit]]
    next_cursor = pagination.encode("model-calls", start + limit) if start + limit < len(calls) else None
    return FastJSONResponse({**_head(session_id, point.version, last), "items": items, "next_cursor": next_cursor})


@router.get(
    "/{session_id}/context",
    response_model=None,
    responses=success(200, answers.Context, "the exact request of a model call"),
)
async def get_context(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    call_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)] = None,
    at_version: Version = None,
    format: Literal["json", "openai", "anthropic"] = "json",
) -> FastJSONResponse:
    """The exact request of model call `call_id` (or of the last call at or before `at_version`),
    rebuilt through its references; `format` gives a provider's API body instead."""
    if call_id is None and at_version is None:
        raise ValidationProblemError(
            "give call_id or at_version",
            errors=[{"field": "query.call_id", "reason": "call_id or at_version is required"}],
        )
    with gc_paused():  # an answer as large as the session (eventstore/large_reads.py)
        return await _context(r, who.tenant, session_id, call_id, at_version, format)


async def _context(
    r: Reads, tenant: str, session_id: str, call_id: str | None, at_version: int | None, format: str
) -> FastJSONResponse:
    point, _ = await _fold_point(r, tenant, session_id, at_version, "query.at_version", knowledge=True)
    return FastJSONResponse(as_format(_knowledge(point).index.context_of(call_id, point.version).to_json(), format))


@router.get(
    "/{session_id}/forks",
    response_model=None,
    # a read of the read models: it may wait for its writes (504 when they are not projected in time)
    responses={**success(200, answers.Forks, "a page of the sessions forked from this one"), **problems(504)},
)
async def get_forks(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    limit: Limit = 100,
    cursor: Cursor = None,
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    """Sessions forked from this one (as projected), by session id; each fork's own
    `GET /v1/sessions/{id}` carries `forked_from` and `forked_from_version`. To list a fork just
    made, pass the `position` its fork command answered as `min_position`: the listing then waits
    until the projector has passed it (`min_version` waits for this session's own version)."""
    after = pagination.decode(cursor, "forks", (str,))
    await r.wait(who.tenant, session_id, min_version, min_position, wait_ms)
    async with r.pool.acquire() as conn:
        if await summaries.get_session(conn, r.projector, who.tenant, session_id) is None:
            raise SessionNotFoundError(f"no session {session_id}", session_id=session_id)
        rows = await summaries.forks_of(conn, who.tenant, session_id, after[0] if after else None, limit + 1)
    items = [dict(row) for row in rows[:limit]]
    next_cursor = pagination.encode("forks", items[-1]["session_id"]) if len(rows) > limit else None
    return {"session_id": session_id, "items": items, "next_cursor": next_cursor}
