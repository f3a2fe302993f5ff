"""A LangGraph checkpoint saver on agentlog: every checkpoint and pending write is an event of the
thread's session, so a graph's run is durable, auditable and replayable like any agent session.

    from agentlog.integrations.langgraph import AgentlogSaver

    saver = AgentlogSaver.connect(api_key, commands_url=..., queries_url=...)
    graph = builder.compile(checkpointer=saver)
    graph.invoke(inputs, {"configurable": {"thread_id": "refund-7"}})   # session "refund-7"

Invariants:
- A thread is a session (ids.py maps a thread id that is not a valid session id); its first
  checkpoint starts it. Namespaces, checkpoint ids, parents, metadata and task paths are kept.
- Values: JSON scalars stay in the checkpoint; other channel values are stored once per channel
  version, like LangGraph's Postgres saver; a value that is JSON is stored as JSON (the query API
  and `agentlog history` show it), any other as the serializer's type tag and bytes (values.py),
  so `get_tuple` gives back what `put` was given.
- `delete_thread` is an event (nothing leaves the log; reads stop showing what came before it);
  `copy_thread` forks the source session at its current version, so the copy shares the
  source's history up to then (lineage), not a copy of it.
- Every read is written once, as client calls (steps.py), run by the sync client for the sync
  methods and the async client for the async ones; reads wait for this saver's own writes. The
  writes of a thread go one request at a time, those that queue up meanwhile together in one
  atomic batch (batching.py): LangGraph saves a step's checkpoint and its tasks' writes
  concurrently, and as separate requests they would race each other on the session's version.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from agentlog.client import AgentlogClient, AsyncAgentlogClient, NotFoundError, queries, writes
from agentlog.client.commands import Command, GraphBlob, GraphWrite, PutGraphCheckpoint, PutGraphWrites
from agentlog.client.models import GraphCheckpoint
from agentlog.integrations import values
from agentlog.integrations.batching import AsyncBatcher, SyncBatcher
from agentlog.integrations.ids import framework_id, session_id_for
from agentlog.integrations.steps import Steps, arun, run

PREFIX = "lg"
PAGE = 100  # checkpoints per query when listing


def thread_session_id(thread_id: str) -> str:
    """The session that holds LangGraph thread `thread_id`."""
    return session_id_for(str(thread_id), PREFIX)


class AgentlogSaver(BaseCheckpointSaver[str]):
    """LangGraph's checkpointer interface (sync and async) on agentlog.

    `client` serves the sync methods (`graph.invoke`), `async_client` the async ones
    (`graph.ainvoke`); give either or both (`connect` makes both). Without an async client the
    async methods run the sync client in a worker thread. `workflow` names the sessions it starts;
    `json_values=False` stores every value through the serializer (e.g. to keep dict key order).
    """

    def __init__(
        self,
        client: AgentlogClient | None = None,
        *,
        async_client: AsyncAgentlogClient | None = None,
        serde: SerializerProtocol | None = None,
        workflow: str = "langgraph",
        json_values: bool = True,
    ) -> None:
        if client is None and async_client is None:
            raise ValueError("give an AgentlogClient, an AsyncAgentlogClient or both")
        super().__init__(serde=serde)
        self.client = client
        self.async_client = async_client
        self.workflow = workflow
        self.json_values = json_values
        self._batches = SyncBatcher(self._send_batch)
        self._abatches = AsyncBatcher(self._asend_batch)

    @classmethod
    def connect(cls, api_key: str, **options: Any) -> AgentlogSaver:
        """A saver with a sync and an async client of the same APIs (`commands_url`,
        `queries_url` and the clients' other options; `serde`, `workflow`, `json_values` go to
        the saver)."""
        own = {k: options.pop(k) for k in ("serde", "workflow", "json_values") if k in options}
        return cls(AgentlogClient(api_key, **options), async_client=AsyncAgentlogClient(api_key, **options), **own)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    async def aclose(self) -> None:
        if self.async_client is not None:
            await self.async_client.aclose()
        self.close()

    # --- running the steps --------------------------------------------------------------------

    def _run(self, steps: Steps[Any]) -> Any:
        if self.client is None:
            raise RuntimeError("this AgentlogSaver has only an async client: use the graph's async methods")
        return run(self.client, steps)

    async def _arun(self, steps: Steps[Any]) -> Any:
        if self.async_client is not None:
            return await arun(self.async_client, steps)
        return await asyncio.to_thread(self._run, steps)

    def _send_batch(self, session_id: str, commands: builtins.list[Command]) -> None:
        if self.client is None:
            raise RuntimeError("this AgentlogSaver has only an async client: use the graph's async methods")
        self.client.send(writes.run_commands(session_id, commands))

    async def _asend_batch(self, session_id: str, commands: builtins.list[Command]) -> None:
        assert self.async_client is not None
        await self.async_client.send(writes.run_commands(session_id, commands))

    def _write(self, session_id: str, command: Command) -> None:
        self._batches.submit(session_id, command)

    async def _awrite(self, session_id: str, command: Command) -> None:
        if self.async_client is None:
            await asyncio.to_thread(self._write, session_id, command)
        else:
            await self._abatches.submit(session_id, command)

    # --- the interface -------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result: CheckpointTuple | None = self._run(self._get_tuple(config))
        return result

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result: CheckpointTuple | None = await self._arun(self._get_tuple(config))
        return result

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        cursor, left = get_checkpoint_id(before) if before else None, limit
        while left is None or left > 0:
            page, cursor = self._run(self._list_page(config, filter, cursor, left))
            yield from page
            left = None if left is None else left - len(page)
            if cursor is None:
                return

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        cursor, left = get_checkpoint_id(before) if before else None, limit
        while left is None or left > 0:
            page, cursor = await self._arun(self._list_page(config, filter, cursor, left))
            for item in page:
                yield item
            left = None if left is None else left - len(page)
            if cursor is None:
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        session_id, command, stored = self._checkpoint(config, checkpoint, metadata, new_versions)
        self._write(session_id, command)
        return stored

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        session_id, command, stored = self._checkpoint(config, checkpoint, metadata, new_versions)
        await self._awrite(session_id, command)
        return stored

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        if found := self._writes(config, writes, task_id, task_path):
            self._write(*found)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        if found := self._writes(config, writes, task_id, task_path):
            await self._awrite(*found)

    def delete_thread(self, thread_id: str) -> None:
        self._run(self._delete_thread(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(self._delete_thread(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._run(self._copy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._arun(self._copy_thread(source_thread_id, target_thread_id))

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Monotonic versions with a random part, as LangGraph's Postgres saver makes them: a
        value forked from an older checkpoint never takes the version of another value."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # --- the reads (each one written once for both clients) ---------------------------------

    def _get_tuple(self, config: RunnableConfig) -> Steps[CheckpointTuple | None]:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        try:
            found = yield queries.graph_checkpoints(
                thread_session_id(thread_id),
                checkpoint_ns=configurable.get("checkpoint_ns", ""),
                checkpoint_id=get_checkpoint_id(config),
                limit=1,
            )
        except NotFoundError:
            return None
        return self._tuple(found.items[0], thread_id) if found.items else None

    def _list_page(
        self, config: RunnableConfig | None, filter: dict[str, Any] | None, before: str | None, left: int | None
    ) -> Steps[tuple[builtins.list[CheckpointTuple], str | None]]:
        """One page of a listing, and the cursor of the next (None: this was the last)."""
        size = PAGE if left is None else min(left, PAGE)
        if config is None:
            found = yield queries.all_graph_checkpoints(before=before, metadata=filter or None, limit=size)
            items, thread_id = found.items, None
        else:
            configurable = config["configurable"]
            thread_id = str(configurable["thread_id"])
            try:
                found = yield queries.graph_checkpoints(
                    thread_session_id(thread_id),
                    checkpoint_ns=configurable.get("checkpoint_ns"),
                    checkpoint_id=get_checkpoint_id(config),
                    before=before,
                    metadata=filter or None,
                    limit=size,
                )
            except NotFoundError:
                return [], None
            items = found.items
        page = [self._tuple(item, thread_id) for item in items]
        return page, (items[-1].checkpoint_id if len(items) == size else None)

    # --- the writes: commands, sent by the batchers (batching.py) ----------------------------

    def _checkpoint(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[str, PutGraphCheckpoint, RunnableConfig]:
        """(session, command, the config LangGraph gets back) of a checkpoint put."""
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        stored: dict[str, Any] = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        inline: dict[str, Any] = {}
        blobs: builtins.list[GraphBlob] = []
        for channel, value in checkpoint["channel_values"].items():
            if values.is_scalar(value):
                inline[channel] = value  # small, and JSON: kept in the checkpoint, like Postgres does
            elif channel in new_versions:
                version = str(new_versions[channel])
                blobs.append(GraphBlob(channel=channel, version=version, value=self._dump(value)))
        stored["channel_values"] = inline
        command = PutGraphCheckpoint(
            thread_id=thread_id,
            checkpoint_id=checkpoint["id"],
            checkpoint=_json(stored, "checkpoint"),
            checkpoint_ns=checkpoint_ns,
            parent_checkpoint_id=configurable.get("checkpoint_id"),
            metadata=_json(dict(get_serializable_checkpoint_metadata(config, metadata)), "metadata"),
            blobs=blobs,
            workflow=self.workflow,
        )
        next_config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": checkpoint["id"]}
        }
        return thread_session_id(thread_id), command, next_config

    def _writes(
        self, config: RunnableConfig, pending: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> tuple[str, PutGraphWrites] | None:
        """(session, command) of a task's writes; None when there are none."""
        if not pending:
            return None
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        command = PutGraphWrites(
            thread_id=thread_id,
            checkpoint_id=configurable["checkpoint_id"],
            task_id=task_id,
            writes=[
                GraphWrite(idx=WRITES_IDX_MAP.get(channel, idx), channel=channel, value=self._dump(value))
                for idx, (channel, value) in enumerate(pending)
            ],
            checkpoint_ns=configurable.get("checkpoint_ns", ""),
            task_path=task_path,
            workflow=self.workflow,
        )
        return thread_session_id(thread_id), command

    # --- the other steps (each one written once for both clients) ---------------------------

    def _delete_thread(self, thread_id: str) -> Steps[None]:
        with contextlib.suppress(NotFoundError):  # a thread never written: nothing to delete
            yield writes.delete_graph_thread(thread_session_id(str(thread_id)), str(thread_id))
        return None

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> Steps[None]:
        source = thread_session_id(str(source_thread_id))
        try:
            head = yield queries.get_session(source)
        except NotFoundError:
            return None  # nothing to copy
        yield writes.fork_session(
            source, at_version=head.version, new_session_id=thread_session_id(str(target_thread_id))
        )
        return None

    # --- values ---------------------------------------------------------------------------------

    def _dump(self, value: Any) -> values.StoredValue:
        return values.dump(self.serde, value, json_values=self.json_values)

    def _tuple(self, item: GraphCheckpoint, thread_id: str | None) -> CheckpointTuple:
        thread = thread_id or item.thread_id or framework_id(item.session_id, PREFIX) or item.session_id
        checkpoint: dict[str, Any] = dict(item.checkpoint)
        loaded: dict[str, Any] = {}
        for channel, stored in (checkpoint.get("channel_values") or {}).items():
            if stored.get("kind") != "empty":
                loaded[channel] = values.load(self.serde, stored)
        checkpoint["channel_values"] = loaded
        config: RunnableConfig = {
            "configurable": {
                "thread_id": thread,
                "checkpoint_ns": item.checkpoint_ns,
                "checkpoint_id": item.checkpoint_id,
            }
        }
        parent: RunnableConfig | None = None
        if item.parent_checkpoint_id:
            parent = {
                "configurable": {
                    "thread_id": thread,
                    "checkpoint_ns": item.checkpoint_ns,
                    "checkpoint_id": item.parent_checkpoint_id,
                }
            }
        pending = [(w.task_id, w.channel, self._load_write(w.value)) for w in item.pending_writes]
        return CheckpointTuple(config, checkpoint, item.metadata, parent, pending)  # type: ignore[arg-type]

    def _load_write(self, stored: Any) -> Any:
        try:
            return values.load(self.serde, stored)
        except values.EmptyValue:
            return None


def _json(value: dict[str, Any], what: str) -> dict[str, Any]:
    """`value` as JSON (tuples as lists, as LangGraph's Postgres saver's Jsonb does); a value that
    is not JSON is a TypeError naming where it is. Converted without paths (a put's hot path), and
    walked again with them only to name what is not JSON."""
    try:
        converted = _fast_plain(value)
    except TypeError:
        converted = _plain(value, what)
    assert isinstance(converted, dict)
    return converted


def _fast_plain(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k if type(k) is str else str(k): _fast_plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_fast_plain(v) for v in value]
    if (kind is str or kind is int or kind is float or kind is bool or value is None) and values.is_scalar(value):
        return value
    raise TypeError("not plain JSON")  # a subclass, or not JSON: _plain converts it or names it


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if values.is_scalar(value):
        return value
    # a subclass of str, int or float (an enum): its plain value (str.__str__ copies the text, where
    # str() would give an enum's name)
    for base, plain in ((str, str.__str__), (int, int), (float, float)):
        if isinstance(value, base) and values.is_scalar(converted := plain(value)):
            return converted
    raise TypeError(f"{where} is not JSON ({type(value).__name__}); LangGraph keeps checkpoints and metadata JSON")
