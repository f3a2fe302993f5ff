"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) against AgentlogSaver on the
real stack: command API, relay, Kafka, projector and query API, each checkpoint read back through
the read model (read-your-writes by min_version). Every capability runs on a fresh saver of a
tenant of its own (the suite reuses thread names such as "thread-0" across capabilities).

The report is printed (pytest -s shows it) and written to $AGENTLOG_CONFORMANCE_REPORT when set.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from contextlib import redirect_stdout

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from agentlog.edge.keys import create_key
from agentlog.integrations.langgraph import AgentlogSaver
from tests.factories import tenant_id
from tests.integration.client_support import PATIENT, ThreadedStack

IMPLEMENTED_EXTENSIONS = {"copy_thread"}


async def test_agentlog_saver_passes_langgraph_checkpoint_conformance(client_stack: ThreadedStack, stack_pool) -> None:
    async def fresh_saver() -> AsyncIterator[AgentlogSaver]:
        key = await create_key(stack_pool, tenant_id("lg"), "writer")
        saver = AgentlogSaver.connect(
            key, commands_url=client_stack.commands_url, queries_url=client_stack.queries_url, retry=PATIENT
        )
        yield saver
        await saver.aclose()

    registered = checkpointer_test(name="AgentlogSaver")(fresh_saver)
    out = io.StringIO()
    with redirect_stdout(out):
        report = await validate(registered, progress=ProgressCallbacks.verbose())
        report.print_report()
    print(out.getvalue())
    if path := os.environ.get("AGENTLOG_CONFORMANCE_REPORT"):
        with open(path, "w") as file:
            file.write(out.getvalue() + "\n" + json.dumps(report.to_dict(), indent=2) + "\n")

    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert report.passed_all_base(), failures
    for capability in BASE_CAPABILITIES:
        assert report.results[capability.value].tests_failed == 0
    for name in IMPLEMENTED_EXTENSIONS:
        result = report.results[name]
        assert (result.detected, result.passed, result.tests_failed) == (True, True, 0), result.failures
    assert report.passed_all(), failures  # every capability it implements passes: "FULL"
