"""Pricing and budgets: the versioned price table, the cost a model call is recorded with, the one
BudgetExceeded a crossing yields (decided with the call), forks spending from zero, and the usage
projection taking costs from the events only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from commands import models as cmd
from commands.decide import decide_many
from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.history import describe
from eventstore.pricing import DEFAULT_TABLE, PriceTableError, load_prices, parse_prices
from eventstore.state import SessionState, fold
from projections.read_models import usage

from .session_spec import NOW, given, started

V1 = {
    "version": "v1",
    "effective_from": "2025-01-01T00:00:00Z",
    "models": {"m": {"input": 1, "output": 2, "cached": 0.5}},
}
V2 = {"version": "v2", "effective_from": "2025-06-01T00:00:00+00:00", "models": {"m": {"input": 10, "output": 20}}}
TABLE = parse_prices({"versions": [V2, V1]})  # any order in the file


def call(call_id: str, tokens: tuple[int, int, int] = (1000, 100, 400), model: str = "m") -> cmd.RecordModelCall:
    inp, out, cached = tokens
    return cmd.RecordModelCall(
        call_id=call_id,
        model=model,
        request={"messages": [{"role": "user", "content": "hi"}]},
        usage={"input_tokens": inp, "output_tokens": out, "cached_tokens": cached},
    )


def decide(state: SessionState, *commands: cmd.Command, now: datetime = NOW) -> list[ev.Event]:
    return decide_many(commands, state, now=now, new_id=lambda: "id", prices=TABLE).events


def test_the_version_in_effect_prices_a_call_and_cached_tokens_pay_the_cached_price():
    before = datetime(2025, 5, 31, 23, 59, tzinfo=UTC)
    # (1000 - 400) * 1 + 400 * 0.5 + 100 * 2 = 1000 per million
    assert TABLE.cost("m", before, 1000, 100, 400) == (0.001, "v1")
    # v2 has no cached price: cached tokens pay the input price
    assert TABLE.cost("m", before + timedelta(minutes=1), 1000, 100, 400) == (0.012, "v2")
    assert TABLE.cost("m", datetime(2024, 1, 1, tzinfo=UTC), 1, 1, 0) is None  # before any version
    assert TABLE.cost("unknown", before, 1, 1, 0) is None
    assert TABLE.cost("m", before, None, None, None) == (0.0, "v1")


def test_costs_are_exact_to_a_billionth_of_a_dollar():
    table = parse_prices({"versions": [{**V1, "models": {"m": {"input": "0.15", "output": "0.6"}}}]})
    assert Decimal(str(table.cost("m", NOW, 3, 7, 0)[0])) == Decimal("0.000004650")


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"versions": []}, "versions"),
        ({"versions": [V1, {**V1, "effective_from": "2025-02-01T00:00:00Z"}]}, "distinct"),
        ({"versions": [V1, {**V1, "version": "v9"}]}, "same instant"),
        ({"versions": [{**V1, "effective_from": "2025-01-01T00:00:00"}]}, "offset"),
        ({"versions": [{**V1, "models": {"m": {"input": -1, "output": 1}}}]}, "greater than or equal"),
        ({"versions": [{**V1, "models": {"m": {"input": 1}}}]}, "output"),
    ],
)
def test_a_bad_price_table_is_refused_with_its_reason(data, reason):
    with pytest.raises(PriceTableError, match=reason):
        parse_prices(data)


def test_the_price_file_is_read_and_the_shipped_default_used_without_one(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"versions": [V1]}))
    assert load_prices(str(path)).versions[0].version == "v1"
    assert load_prices(None) is DEFAULT_TABLE and DEFAULT_TABLE.cost("gpt-4o", NOW, 1000, 0, 0) is not None
    with pytest.raises(PriceTableError, match="cannot read"):
        load_prices(str(tmp_path / "missing.json"))


def test_a_model_call_is_recorded_with_its_cost_and_price_version():
    [event] = decide(fold([started()]), call("m1"))
    assert event.cost == ev.ModelCost(usd=0.001, price_version="v1")
    [unpriced] = decide(fold([started()]), call("m2", model="other"))
    assert unpriced.cost is None


def test_a_retried_call_after_a_price_change_is_the_same_call_not_a_conflict():
    [first] = decide(fold([started()]), call("m1"))
    state = fold([started(), first])
    assert decide(state, call("m1"), now=datetime(2025, 7, 1, tzinfo=UTC)) == []


BUDGET = {"max_tokens": 2000}


def test_the_call_that_crosses_the_budget_is_recorded_with_one_budget_exceeded():
    s = fold([started(budget=BUDGET)])
    [c1] = decide(s, call("c1"))  # 1100 tokens
    s = fold([c1], s)
    c2, exceeded = decide(s, call("c2"))  # 2200 > 2000
    assert c2.call_id == "c2"
    assert exceeded == ev.BudgetExceeded(
        call_id="c2", exceeded="tokens", tokens=2200, cost_usd=0.002, max_tokens=2000, max_cost_usd=None
    )
    s = fold([c2, exceeded], s)
    assert s.budget["exceeded"] is True
    assert [type(e) for e in decide(s, call("c3"))] == [ev.ModelCallRecorded]  # once per session


def test_a_cost_budget_is_crossed_by_the_priced_cost_and_reaching_it_exactly_is_not_over():
    s = fold([started(budget={"max_cost_usd": 0.002})])
    events = decide(s, call("c1"), call("c2"))
    assert [type(e) for e in events] == [ev.ModelCallRecorded, ev.ModelCallRecorded]  # 0.002 is not over
    events = decide(fold(events, s), call("c3"))
    assert events[1] == ev.BudgetExceeded(
        call_id="c3", exceeded="cost", tokens=3300, cost_usd=0.003, max_tokens=None, max_cost_usd=0.002
    )


def test_one_body_with_several_calls_over_the_budget_yields_one_budget_exceeded():
    events = decide(fold([started(budget={"max_tokens": 100})]), call("a"), call("b"), call("c"))
    assert [type(e).__name__ for e in events] == [
        "ModelCallRecorded",
        "BudgetExceeded",
        "ModelCallRecorded",
        "ModelCallRecorded",
    ]


def test_without_a_budget_nothing_is_tracked_or_exceeded():
    s = fold([started()])
    assert [type(e) for e in decide(s, call("c1", (10**9, 0, 0)))] == [ev.ModelCallRecorded]
    assert s.budget is None


def test_a_fork_keeps_the_budget_limits_and_spends_from_zero():
    s = fold([started(budget=BUDGET)])
    events = decide(s, call("c1"), call("c2"))  # crossed in the source
    source = fold(events, s)
    assert source.budget["exceeded"]
    fork = fold([ev.SessionForked(source_session_id="src", source_version=source.version, state=source.to_snapshot())])
    assert fork.budget == {"max_tokens": 2000, "max_cost_usd": None, "tokens": 0, "cost_usd": 0.0, "exceeded": False}
    assert [type(e) for e in decide(fork, call("f1"))] == [ev.ModelCallRecorded]


def test_the_budget_survives_the_snapshot_and_old_snapshots_read_as_no_budget():
    s = fold([started(budget=BUDGET), *decide(fold([started(budget=BUDGET)]), call("c1"))])
    assert SessionState.from_snapshot(s.to_snapshot()) == s
    old = {k: v for k, v in s.to_snapshot().items() if k != "budget"}
    assert SessionState.from_snapshot(old).budget is None


@pytest.mark.parametrize(
    "budget", [{}, {"max_tokens": 0}, {"max_cost_usd": 0}, {"max_cost_usd": float("inf")}, {"max_tokens": 1, "x": 1}]
)
def test_start_session_refuses_a_budget_without_a_usable_limit(budget):
    with pytest.raises(ValidationError):
        cmd.StartSession(budget=budget)


def test_start_session_records_its_budget():
    [event] = given().when(cmd.StartSession(budget={"max_cost_usd": 1.5})).events or []
    assert event == ev.SessionStarted(budget=ev.Budget(max_cost_usd=1.5))


def test_budget_exceeded_has_a_history_line():
    line = describe(ev.BudgetExceeded(call_id="c2", exceeded="tokens", tokens=2200, cost_usd=0.002, max_tokens=2000))
    assert line == "budget exceeded (tokens) by model call c2: 2200 tokens of 2000, $0.002000"


def _recorded(event: ev.Event, version: int = 3) -> RecordedEvent:
    from eventstore.registry import to_stored

    type_, schema, data = to_stored(event)
    return RecordedEvent(
        position=10,
        session_id="s",
        version=version,
        event_id=__import__("uuid").uuid4(),
        type=type_,
        schema_version=schema,
        data=data,
        tenant="acme",
        recorded_at=NOW,
    )


def test_the_usage_projection_takes_the_cost_from_the_event_and_never_prices():
    [event] = decide(fold([started()]), call("m1"))
    [write] = usage.on_model_call(_recorded(event), event)
    assert write.args[2:4] == ("m1", 3)
    assert write.args[8:15] == (1000, 100, 400, Decimal("0.001"), "v1", None, False)
    # a v1 event (before pricing) stays unpriced whatever the table says now
    unpriced = event.model_copy(update={"cost": None})
    assert usage.on_model_call(_recorded(unpriced), unpriced)[0].args[11:13] == (None, None)


def test_the_usage_projection_writes_no_budget_row_without_a_budget_and_counts_no_inherited_call():
    assert usage.on_started(_recorded(started()), started()) == []
    snapshot = fold([started(), *decide(fold([started()]), call("c1"))]).to_snapshot()
    forked = ev.SessionForked(source_session_id="src", source_version=2, state=snapshot)
    assert usage.PROJECTION.writes_for(_recorded(forked, 1), forked) == []
