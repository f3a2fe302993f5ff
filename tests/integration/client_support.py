"""Support for the client's integration tests (no tests here): the whole of agentlog in a thread
of the test process, on real ports, over the real Postgres and Kafka.

The command API and the query API (uvicorn, each on a free port), the relay and the projector run
on one event loop in a background thread, on a database of their own (a copy of the migrated
template) and a topic of their own. The thread owns its loop, so a blocking client in a test (or a
sync test) never stalls the servers, and either client talks real HTTP to them. `Either` lets one
test body drive the sync or the async client: it awaits the async client's methods and runs the
sync client's in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import uvicorn

from agentlog.client import AgentlogClient, AsyncAgentlogClient, RetryPolicy
from agentlog.edge.keys import create_key
from commands.api.app import create_app as commands_app
from commands.api.settings import CommandsSettings
from eventstore import db
from eventstore.settings import Settings
from outbox.relay import Relay
from projections.api.app import create_app as queries_app
from projections.settings import QueriesSettings
from tests.factories import create_database, drop_database, free_port, tenant_id, topic_name, with_database
from tests.integration.projection_support import running_projector
from tests.integration.projection_support import settings as projector_settings
from tests.integration.relay_support import relay_settings
from tests.waiting import wait_until

START_TIMEOUT_S = 90


class ThreadedStack:
    def __init__(self, admin_dsn: str, template: str, bootstrap: str) -> None:
        self.admin_dsn, self.template, self.bootstrap = admin_dsn, template, bootstrap
        self.topic = topic_name("client")
        self.commands_url = self.queries_url = self.database_url = ""
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="agentlog-client-stack", daemon=True)

    def start(self) -> ThreadedStack:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._failure is not None:
            raise AssertionError(f"the stack did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._failure is not None:
            raise AssertionError(f"the stack failed: {self._failure!r}") from self._failure

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() or stop() in the test's thread
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        name = await create_database(self.admin_dsn, "agentlog_client", template=self.template)
        self.database_url = with_database(self.admin_dsn, name)
        try:
            await self._serve()
        finally:
            await drop_database(self.admin_dsn, name)

    async def _serve(self) -> None:
        shared = Settings(
            database_url=self.database_url, kafka_bootstrap_servers=self.bootstrap, kafka_topic=self.topic
        )
        projector = projector_settings()
        ports = free_port(), free_port()
        apps = (
            commands_app(CommandsSettings(pool_size=10), shared=shared),
            queries_app(QueriesSettings(projector_group=projector.group_id, poll_interval_ms=100), shared=shared),
        )
        servers = [
            uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
            for app, port in zip(apps, ports, strict=True)
        ]
        self.commands_url, self.queries_url = (f"http://127.0.0.1:{port}" for port in ports)
        pool = await db.create_pool(self.database_url, min_size=1, max_size=4)
        assert self._stop is not None
        try:
            async with (
                Relay(shared, relay_settings()) as relay,
                running_projector(pool, self.bootstrap, self.topic, projector) as running,
            ):
                tasks = [asyncio.create_task(s.serve()) for s in servers]
                tasks.append(asyncio.create_task(relay.run(self._stop)))

                async def started() -> bool:
                    if any(t.done() for t in tasks):
                        await asyncio.gather(*tasks)  # raises what stopped it
                    return all(s.started for s in servers)

                await wait_until(started, timeout=60, message="both APIs to serve")
                self._ready.set()
                await self._until_stop_or_death([*tasks, running.task])
                for server in servers:
                    server.should_exit = True
                self._stop.set()
                ended = await asyncio.gather(*tasks, return_exceptions=True)
                self._failure = self._failure or next((e for e in ended if isinstance(e, BaseException)), None)
        finally:
            await pool.close()

    async def _until_stop_or_death(self, tasks: list[asyncio.Task]) -> None:
        """Until stop() is called, or until a component (an API, the relay, the projector) ends on its
        own: then the whole stack goes down, so that the tests fail at once on refused connections
        instead of waiting for events that no relay will publish, and stop() reports why."""
        assert self._stop is not None
        stopping = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        dead = [t for t in tasks if t in done]
        if dead and not self._stop.is_set():
            error = dead[0].exception() if not dead[0].cancelled() else None
            self._failure = error or RuntimeError(f"a component of the stack ended on its own: {dead[0]!r}")
            logging.getLogger(__name__).error("the client stack is going down: %r", self._failure)


@pytest.fixture(scope="module")
def client_stack(services, template_database: str, kafka_bootstrap: str) -> Iterator[ThreadedStack]:
    running = ThreadedStack(services.database_url(), template_database, kafka_bootstrap).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def stack_pool(client_stack: ThreadedStack) -> AsyncIterator[asyncpg.Pool]:
    """The stack's database, from the test's own loop (for keys and for counting events)."""
    pool = await db.create_pool(client_stack.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


class Keys:
    def __init__(self, tenant: str, writer: str, reader: str) -> None:
        self.tenant, self.writer, self.reader = tenant, writer, reader


@pytest.fixture
async def keys(stack_pool: asyncpg.Pool) -> Keys:
    """A writer and a reader key of a tenant of this test's own."""
    tenant = tenant_id()
    return Keys(tenant, await create_key(stack_pool, tenant, "writer"), await create_key(stack_pool, tenant, "reader"))


# A budget that rides out a projector rebalance on a loaded machine, never hides a failure.
PATIENT = RetryPolicy(max_attempts=10, max_elapsed_s=60)


@pytest.fixture
async def client(client_stack: ThreadedStack, keys: Keys) -> AsyncIterator[AsyncAgentlogClient]:
    """An async client with the writer key and patient retries, on the stack's two APIs."""
    async with AsyncAgentlogClient(
        keys.writer, commands_url=client_stack.commands_url, queries_url=client_stack.queries_url, retry=PATIENT
    ) as made:
        yield made


class Either:
    """`await either.add_message(...)` on the async client, or the sync client's in a worker thread;
    iterators come back as lists."""

    def __init__(self, client: AgentlogClient | AsyncAgentlogClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if isinstance(self.client, AsyncAgentlogClient):
                result = method(*args, **kwargs)
                if isinstance(result, AsyncIterator):
                    return [item async for item in result]
                return await result
            return await asyncio.to_thread(lambda: _materialise(method(*args, **kwargs)))

        return call


def _materialise(result: Any) -> Any:
    return list(result) if isinstance(result, Iterator) else result


def make_client(kind: str, stack: ThreadedStack, key: str, **options: Any) -> AgentlogClient | AsyncAgentlogClient:
    cls = AgentlogClient if kind == "sync" else AsyncAgentlogClient
    options.setdefault("retry", PATIENT)
    return cls(key, commands_url=stack.commands_url, queries_url=stack.queries_url, **options)


@pytest.fixture(params=["sync", "async"])
async def either(request: pytest.FixtureRequest, client_stack: ThreadedStack, keys: Keys) -> AsyncIterator[Either]:
    """A writer's client of either kind on the stack."""
    client = make_client(request.param, client_stack, keys.writer)
    yield Either(client)
    if isinstance(client, AsyncAgentlogClient):
        await client.aclose()
    else:
        client.close()
