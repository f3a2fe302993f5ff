"""Group commit per session: the writes a framework issues for one session while an earlier one
is in flight go together, in order, as one atomic batch (POST /v1/sessions/{id}/commands).

Why: LangGraph saves a step's checkpoint and its tasks' writes in the background, concurrently,
all for the same session; sent as concurrent requests they lose version races to each other on
the command API (each loser reloads, decides again and backs off), and each costs a round trip.
One request at a time per session, carrying whatever queued up behind it, removes both.

Invariants: a caller returns when its own command is stored (or raises the batch's error: a
batch is all or nothing); commands of one session are sent in the order they were submitted, one
request at a time; sessions do not wait for each other; a batch holds at most MAX_COMMANDS
commands and about MAX_BYTES of JSON, so it stays within the command API's body limit.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentlog.client.commands import Command

MAX_COMMANDS = 64
MAX_BYTES = 512 * 1024
LINGER_TURNS = 4  # event-loop turns a sender waits for submitters its last answer woke (AsyncBatcher)


def _size(command: Command) -> int:
    return len(json.dumps(command.item(), separators=(",", ":"), ensure_ascii=False, default=str))


def _take(queue: list[Any], command_of: Callable[[Any], Command]) -> list[Any]:
    """The first entries of `queue` that fit one batch (at least one), removed from it. Sizes are
    measured only when there is more than one to send (serializing costs as much as sending)."""
    taken, total = 0, 0
    while taken < len(queue) and taken < MAX_COMMANDS:
        if len(queue) > 1:
            total += _size(command_of(queue[taken]))
            if taken and total > MAX_BYTES:
                break
        taken += 1
    batch = queue[:taken]
    del queue[:taken]
    return batch


@dataclass
class _Entry:
    command: Command
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class SyncBatcher:
    """For the blocking client (LangGraph runs saves in worker threads): the thread that finds a
    session idle sends, for itself and for whoever queued behind it."""

    def __init__(self, send: Callable[[str, list[Command]], Any]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._queues: dict[str, list[_Entry]] = {}
        self._sending: set[str] = set()

    def submit(self, session_id: str, command: Command) -> None:
        entry = _Entry(command)
        with self._lock:
            self._queues.setdefault(session_id, []).append(entry)
            leads = session_id not in self._sending
            if leads:
                self._sending.add(session_id)
        if leads:
            self._drain(session_id)
        entry.done.wait()
        if entry.error is not None:
            raise entry.error

    def _drain(self, session_id: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(session_id, [])
                if not queue:
                    self._sending.discard(session_id)
                    self._queues.pop(session_id, None)
                    return
                batch = _take(queue, lambda e: e.command)
            error: BaseException | None = None
            try:
                self._send(session_id, [e.command for e in batch])
            except BaseException as exc:  # handed to every caller of the batch
                error = exc
            for entry in batch:
                entry.error = error
                entry.done.set()


class AsyncBatcher:
    """For the async client: one sender task per busy session, on the caller's event loop.

    Before each request the sender lets the loop turn LINGER_TURNS times (no timer, no sleep):
    the callers its previous request answered resume in those turns, and a framework that chains
    its next save on the previous one (LangGraph's `aput` awaits the previous `aput`) submits it
    then, so it joins this request instead of waiting for the next one."""

    def __init__(self, send: Callable[[str, list[Command]], Awaitable[Any]]) -> None:
        self._send = send
        self._queues: dict[str, list[tuple[Command, asyncio.Future[None]]]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}

    async def submit(self, session_id: str, command: Command) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(session_id, []).append((command, future))
        sender = self._senders.get(session_id)
        if sender is None or sender.done():  # a sender that ended stays listed until its callback ran
            sender = asyncio.create_task(self._drain(session_id))
            sender.add_done_callback(lambda ended: self._stopped(session_id, ended))
            self._senders[session_id] = sender
        await future

    async def _drain(self, session_id: str) -> None:
        while await self._linger(session_id):
            queue = self._queues[session_id]
            batch = _take(queue, lambda e: e[0])
            try:
                await self._send(session_id, [command for command, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    def _stopped(self, session_id: str, ended: asyncio.Task[None]) -> None:
        """A sender ended: unless a new one took over, its queue is empty, or it was stopped
        (cancelled, even before it began) and then its waiters must not wait for ever."""
        if self._senders.get(session_id) is not ended:
            return
        del self._senders[session_id]
        for _, future in self._queues.pop(session_id, []):
            future.cancel()

    async def _linger(self, session_id: str) -> bool:
        """Whether there is something to send, after the loop turned for late submitters."""
        for _ in range(LINGER_TURNS):
            await asyncio.sleep(0)
        return bool(self._queues.get(session_id))
