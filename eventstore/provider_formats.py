"""A rebuilt model request as the body of a provider's API: OpenAI Chat Completions or Anthropic
Messages (`agentlog context --format openai|anthropic`).

Invariant: a message already in the target's shape passes through unchanged, so a request an
agent recorded in its provider's own shape comes back as the body it sent (system prompt and
tools aside, which the record keeps apart and this module puts where the provider wants them).
Other shapes are translated: OpenAI `tool_calls` / `role: tool` <-> Anthropic `tool_use` /
`tool_result` blocks, plain `{id, name, arguments}` tool calls, tool definitions given as
`{name, description, parameters | input_schema}` or OpenAI's `{type: function, function}`.
Pure and total: an unknown shape is passed on as it is, never dropped.
"""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("json", "openai", "anthropic")


def _text_of(content: Any) -> str | None:
    """Text of a content that is a string or a list of blocks (their text joined)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n".join(texts)
    return json.dumps(content)


def _tool_parts(tool: dict[str, Any]) -> tuple[str, str | None, Any]:
    """(name, description, JSON schema) of a tool definition in any supported shape."""
    function = tool.get("function")
    if tool.get("type") == "function" and isinstance(function, dict):
        return function.get("name", ""), function.get("description"), function.get("parameters")
    schema = tool.get("input_schema", tool.get("parameters"))
    return tool.get("name", ""), tool.get("description"), schema


def _call_parts(call: dict[str, Any]) -> tuple[Any, str, Any]:
    """(id, name, arguments as an object) of a requested tool call in any supported shape."""
    function = call.get("function")
    if isinstance(function, dict):
        name, arguments = function.get("name", ""), function.get("arguments")
    else:
        name, arguments = call.get("name", ""), call.get("arguments", call.get("input"))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {"_raw": arguments}
    return call.get("id"), name, arguments if arguments is not None else {}


# --- OpenAI Chat Completions -------------------------------------------------------------------


def _openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool
    name, description, schema = _tool_parts(tool)
    function: dict[str, Any] = {"name": name}
    if description is not None:
        function["description"] = description
    if schema is not None:
        function["parameters"] = schema
    return {"type": "function", "function": function}


def _openai_call(call: dict[str, Any]) -> dict[str, Any]:
    if call.get("type") == "function" and isinstance(call.get("function"), dict):
        return call
    call_id, name, arguments = _call_parts(call)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _openai_messages(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    uses = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
    results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    if message.get("role") == "assistant" and (uses or message.get("tool_calls")):
        calls = [
            *message.get("tool_calls", []),
            *({"id": u.get("id"), "name": u.get("name"), "input": u.get("input")} for u in uses),
        ]
        text = _text_of(content) if uses else content
        return [{"role": "assistant", "content": text or None, "tool_calls": [_openai_call(c) for c in calls]}]
    if results:
        out = [
            {"role": "tool", "tool_call_id": r.get("tool_use_id"), "content": _text_of(r.get("content")) or ""}
            for r in results
        ]
        rest = [b for b in blocks if b not in results]
        return out + ([{"role": message.get("role", "user"), "content": rest}] if rest else [])
    return [message]


def to_openai(model: str, request: dict[str, Any]) -> dict[str, Any]:
    messages = [m for message in request["messages"] for m in _openai_messages(message)]
    system = request.get("system")
    if system is not None:
        messages.insert(0, {"role": "system", "content": _text_of(system)})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if request.get("tools"):
        body["tools"] = [_openai_tool(t) for t in request["tools"]]
    return {**body, **request.get("parameters", {})}


# --- Anthropic Messages ---------------------------------------------------------------------------


def _anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if "input_schema" in tool and "function" not in tool:
        return tool
    name, description, schema = _tool_parts(tool)
    out: dict[str, Any] = {"name": name}
    if description is not None:
        out["description"] = description
    out["input_schema"] = schema if schema is not None else {"type": "object", "properties": {}}
    return out


def _anthropic_message(message: dict[str, Any]) -> dict[str, Any]:
    role, content = message.get("role"), message.get("content")
    if role == "tool":
        block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": content}
        return {"role": "user", "content": [block]}
    if role == "assistant" and message.get("tool_calls"):
        blocks: list[dict[str, Any]] = []
        if isinstance(content, list):
            blocks.extend(content)
        elif content:
            blocks.append({"type": "text", "text": content})
        for call in message["tool_calls"]:
            call_id, name, arguments = _call_parts(call)
            blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
        return {"role": "assistant", "content": blocks}
    return message


def _merge_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive tool results go back in one user turn, as Anthropic's API wants them."""
    out: list[dict[str, Any]] = []
    for message in messages:
        previous = out[-1] if out else None
        if previous is not None and _only_results(previous) and _only_results(message):
            out[-1] = {"role": "user", "content": [*previous["content"], *message["content"]]}
        else:
            out.append(message)
    return out


def _only_results(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return (
        message.get("role") == "user"
        and isinstance(content, list)
        and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    )


def to_anthropic(model: str, request: dict[str, Any]) -> dict[str, Any]:
    systems = [m for m in request["messages"] if m.get("role") == "system"]
    system = request.get("system")
    if systems:
        texts = ([_text_of(system)] if system is not None else []) + [_text_of(m.get("content")) for m in systems]
        system = "\n\n".join(t for t in texts if t)
    turns = [_anthropic_message(m) for m in request["messages"] if m.get("role") != "system"]
    body: dict[str, Any] = {"model": model}
    if system is not None:
        body["system"] = system
    body["messages"] = _merge_tool_results(turns)
    if request.get("tools"):
        body["tools"] = [_anthropic_tool(t) for t in request["tools"]]
    return {**body, **request.get("parameters", {})}


def as_format(context: dict[str, Any], fmt: str) -> dict[str, Any]:
    """`context` (ModelContext.to_json()) in `fmt`: itself for json, else the provider's body."""
    if fmt == "json":
        return context
    convert = to_openai if fmt == "openai" else to_anthropic
    return convert(context["model"], context["request"])
