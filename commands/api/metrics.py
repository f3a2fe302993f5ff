"""Prometheus metrics of one command API app, in its own registry (two apps never collide)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agentlog.telemetry.stages import stage_histogram
from commands.state_cache import StateCache
from eventstore.group_commit import AppendBatcher

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class StateCacheCollector(Collector):
    """The state cache's counters, read when scraped (the cache counts; nothing per command here)."""

    def __init__(self, cache: StateCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lookups = CounterMetricFamily(
            "agentlog_commands_state_cache_lookups",
            "Commands without an Idempotency-Key by what the state cache had: hit (decided without a "
            "read), stale (a hit decided again on a read), miss, bypassed (the cache was judged not "
            "worth it: most hits were stale)",
            labels=["outcome"],
        )
        cache = self._cache
        lookups.add_metric(["hit"], cache.hits - cache.stale)
        lookups.add_metric(["stale"], cache.stale)
        lookups.add_metric(["miss"], cache.misses)
        lookups.add_metric(["bypassed"], cache.bypassed)
        yield lookups
        yield GaugeMetricFamily("agentlog_commands_state_cache_sessions", "Session states cached", value=len(cache))
        yield GaugeMetricFamily(
            "agentlog_commands_state_cache_bytes", "JSON bytes of the session states cached", value=cache.bytes
        )


class GroupCommitCollector(Collector):
    """Appends and the transactions that wrote them (eventstore/group_commit.py): their ratio is the
    mean batch, 1 on a quiet system, growing with the load."""

    def __init__(self, batcher: AppendBatcher) -> None:
        self._batcher = batcher

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "agentlog_commands_group_commit_appends",
            "Appends sent through the group commit (to existing sessions at a known version)",
            value=self._batcher.appends,
        )
        yield CounterMetricFamily(
            "agentlog_commands_group_commit_transactions",
            "Transactions those appends were sent in (one alone, or a batch)",
            value=self._batcher.writes,
        )


class CommandMetrics:
    def __init__(self, cache: StateCache | None = None, batcher: AppendBatcher | None = None) -> None:
        self.registry = CollectorRegistry()
        if cache is not None:
            self.registry.register(StateCacheCollector(cache))
        if batcher is not None:
            self.registry.register(GroupCommitCollector(batcher))
        self.commands = Counter(
            "agentlog_commands_total",
            "Commands handled, by command and outcome (ok, replayed or the problem code)",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "agentlog_commands_append_seconds",
            "Time to load, decide and append one request",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # a request received -> its append committed (or its no-op answered)
        self.stage = stage_histogram(self.registry).labels("command")

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
