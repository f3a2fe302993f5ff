"""References a model call's request makes instead of repeating messages: their shape and size.

A request's `messages` (and a compaction's `replaced` / `replacement`) is a list of items. An item
is either a message object (a JSON object with a `role`, kept exactly as the agent sent it) or a
reference (a JSON object with a `ref` member and no `role`) to messages the session already holds:

    {"ref": "message", "index": I}                        the session's I-th MessageAdded (0-based,
                                                          counted along a fork's lineage) as
                                                          {"role": ..., "content": ...}
    {"ref": "call", "call_id": C, "start": S, "stop": E}  messages S..E-1 of model call C's request
                                                          (start defaults to 0, stop to its end)
    {"ref": "response", "call_id": C}                     model call C's answer as an assistant
                                                          message (`response_message`)
    {"ref": "compaction", "compaction_id": K}             the messages compaction K put in place

Invariant: how many messages an item stands for follows from the message counts of earlier calls
and compactions alone (`item_count`), so the fold keeps one number per call and the decider checks
a range without reading the log. References only point backwards (to what the session held when
the call was decided), so resolving them never loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MessageRef(_Ref):
    ref: Literal["message"]
    index: int = Field(ge=0)


class CallRef(_Ref):
    ref: Literal["call"]
    call_id: str
    start: int = Field(default=0, ge=0)
    stop: int | None = Field(default=None, ge=0)


class ResponseRef(_Ref):
    ref: Literal["response"]
    call_id: str


class CompactionRef(_Ref):
    ref: Literal["compaction"]
    compaction_id: str


Ref = Annotated[MessageRef | CallRef | ResponseRef | CompactionRef, Field(discriminator="ref")]
_REF: TypeAdapter[Any] = TypeAdapter(Ref)


def is_reference(item: Mapping[str, Any]) -> bool:
    return "ref" in item


def parse_ref(item: Mapping[str, Any]) -> MessageRef | CallRef | ResponseRef | CompactionRef:
    """The reference `item` is; raises pydantic.ValidationError if it is not a valid one."""
    if len(item) == 2:  # the common shapes, plainly valid: built without validating (resolve's hot path)
        kind = item.get("ref")
        if kind == "message" and _index(item.get("index")):
            return MessageRef.model_construct(ref="message", index=item["index"])
        if kind == "response" and _id(item.get("call_id")):
            return ResponseRef.model_construct(ref="response", call_id=item["call_id"])
        if kind == "call" and _id(item.get("call_id")):
            return CallRef.model_construct(ref="call", call_id=item["call_id"], start=0, stop=None)
    ref: MessageRef | CallRef | ResponseRef | CompactionRef = _REF.validate_python(item)
    return ref


def call_window(ref: CallRef, call_count: int) -> tuple[int, int]:
    """The [start, stop) a call reference takes of a call with `call_count` messages (clipped)."""
    stop = call_count if ref.stop is None else min(ref.stop, call_count)
    return min(ref.start, stop), stop


def item_count(item: Mapping[str, Any], calls: Mapping[str, int], compactions: Mapping[str, int]) -> int:
    """How many messages `item` stands for, given the message counts of earlier calls and
    compactions (an unknown id counts 0: the fold never refuses what is in the log)."""
    if not is_reference(item):
        return 1
    kind = item["ref"]
    if len(item) == 2 and (
        (kind == "message" and _index(item.get("index"))) or (kind == "response" and _id(item.get("call_id")))
    ):
        return 1  # the common references, valid without a model: what parse_ref would accept
    if kind == "call" and len(item) == 2 and _id(item.get("call_id")):
        return calls.get(item["call_id"], 0)
    try:
        ref = parse_ref(item)
    except ValueError:
        return 0
    if isinstance(ref, MessageRef | ResponseRef):
        return 1
    if isinstance(ref, CompactionRef):
        return compactions.get(ref.compaction_id, 0)
    start, stop = call_window(ref, calls.get(ref.call_id, 0))
    return stop - start


def _index(value: Any) -> bool:
    return type(value) is int and value >= 0


def _id(value: Any) -> bool:
    return type(value) is str


def items_count(items: list[dict[str, Any]], calls: Mapping[str, int], compactions: Mapping[str, int]) -> int:
    return sum(item_count(item, calls, compactions) for item in items)


def response_message(content: Any, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A model's answer as the assistant message a later request repeats: role and content, and
    the requested tool calls when there are any."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message
