"""Command input limits: whatever parses is within every size and shape limit."""

import pytest
from pydantic import ValidationError

from commands import models as cmd


def test_parse_command_reads_a_multi_command_item_by_type():
    command = cmd.parse_command({"type": "add_message", "role": "user", "content": "hi"})
    assert command == cmd.AddMessage(role="user", content="hi")


def test_parse_command_is_refused_when_type_unknown():
    with pytest.raises(ValidationError):
        cmd.parse_command({"type": "drop_tables"})


def test_command_is_refused_when_it_has_an_unknown_field():
    with pytest.raises(ValidationError):
        cmd.AddMessage(role="user", content="hi", mood="grumpy")


def test_add_message_is_refused_when_content_exceeds_64_kib():
    cmd.AddMessage(role="user", content="x" * 64 * 1024)
    with pytest.raises(ValidationError):
        cmd.AddMessage(role="user", content="x" * (64 * 1024 + 1))


def test_add_message_counts_content_limit_in_utf8_bytes():
    with pytest.raises(ValidationError):
        cmd.AddMessage(role="user", content="\u00e9" * (32 * 1024 + 1))


@pytest.mark.parametrize("call_id", ["has space", "a" * 129, ""])
def test_complete_tool_call_is_refused_when_call_id_invalid(call_id):
    with pytest.raises(ValidationError):
        cmd.CompleteToolCall(call_id=call_id)


def test_request_tool_call_is_refused_when_arguments_too_large():
    with pytest.raises(ValidationError):
        cmd.RequestToolCall(tool="search", arguments={"q": "x" * 64 * 1024})


def test_request_approval_is_refused_when_expiry_has_no_time_zone():
    with pytest.raises(ValidationError):
        cmd.RequestApproval(action="a", requested_by="p", expires_at="2025-01-01T00:00:00")


def test_save_checkpoint_is_refused_when_name_has_control_characters():
    with pytest.raises(ValidationError):
        cmd.SaveCheckpoint(name="bad\x07name")


def test_commands_are_frozen():
    command = cmd.FailSession(reason="x")
    with pytest.raises(ValidationError):
        command.reason = "y"
