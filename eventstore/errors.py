"""Typed errors of agentlog. Each carries a stable `code`, the HTTP status an API maps it to, and,
for infrastructure errors, whether retrying may succeed. APIs map them to problem+json in one place."""

from __future__ import annotations

from typing import Any


class AgentlogError(Exception):
    code = "agentlog_error"
    status = 500
    retriable = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The application/problem+json body (RFC 9457) for this error."""
        body: dict[str, Any] = {
            "type": f"https://agentlog.dev/problems/{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class ValidationProblemError(AgentlogError):
    """Input that is well-formed JSON but says something invalid (field + reason in `errors`)."""

    code = "invalid_input"
    status = 422


class SessionNotFoundError(AgentlogError):
    """Also raised for another tenant's session: its existence is not revealed."""

    code = "session_not_found"
    status = 404


class ConcurrencyError(AgentlogError):
    """The expected version did not match; `current_version` tells the caller where the stream is."""

    code = "version_conflict"
    status = 409


class StreamAlreadyExistsError(ConcurrencyError):
    code = "session_exists"


class RuleViolationError(AgentlogError):
    """A command the session's current state forbids (closed session, no open call, ...)."""

    code = "rule_violation"
    status = 409


class SchemaBehindError(AgentlogError):
    code = "schema_behind"
    status = 503


class InfrastructureError(AgentlogError):
    code = "infrastructure_unavailable"
    status = 503
    retriable = True


# --- Domain rules broken by a command, given the session's current state (409 unless noted). ---


class SessionAlreadyStartedError(RuleViolationError):
    code = "session_already_started"


class SessionClosedError(RuleViolationError):
    """The session is completed, failed or cancelled: it takes no more events."""

    code = "session_closed"


class ToolCallNotOpenError(RuleViolationError):
    """A result or failure for a call that was never requested or is already finished."""

    code = "tool_call_not_open"


class ToolCallIdInUseError(RuleViolationError):
    """A tool call id is used once per session: a finished call cannot be requested again."""

    code = "tool_call_id_in_use"


class ApprovalNotFoundError(AgentlogError):
    code = "approval_not_found"
    status = 404


class ApprovalAlreadyDecidedError(RuleViolationError):
    code = "approval_already_decided"


class ApprovalExpiredError(RuleViolationError):
    code = "approval_expired"


class SectionOwnedByOtherAgentError(RuleViolationError):
    """A state section belongs to its first writer unless the session allows shared sections."""

    code = "section_owned_by_other_agent"


# --- Replay (time travel): a target the session does not reach, or a source missing events. ---


class ReplayTargetError(AgentlogError):
    """--to-version beyond the end, a time before the first event, a checkpoint never saved."""

    code = "replay_target_not_found"
    status = 422


class ReplaySourceIncompleteError(AgentlogError):
    """The events read skip a version (e.g. the topic does not hold the whole session yet)."""

    code = "replay_source_incomplete"
    status = 409


# --- Model calls and their context (time travel): ids used once, references that must resolve. ---


class ModelCallIdInUseError(RuleViolationError):
    """A model call id is used once per session; the same id with another payload is refused."""

    code = "model_call_id_in_use"


class CompactionIdInUseError(RuleViolationError):
    """A context compaction id is used once per session."""

    code = "compaction_id_in_use"


class ModelCallNotFoundError(AgentlogError):
    """No model call with that id in the session (or none at or before the version asked)."""

    code = "model_call_not_found"
    status = 404


class ContextReferenceError(AgentlogError):
    """A stored request references something its session does not hold: the log is wrong."""

    code = "context_reference_broken"
    status = 500


# --- Reading stored events and snapshots: the log or the code is wrong, not the client (500). ---


class EventDecodingError(AgentlogError):
    """A stored event cannot be turned into its current model."""

    code = "event_decoding_failed"
    status = 500


class UnknownEventTypeError(EventDecodingError):
    code = "unknown_event_type"


class EventSchemaTooNewError(EventDecodingError):
    """Written by a newer agentlog than the one reading: upgrade the reader, do not guess."""

    code = "event_schema_too_new"


class MissingUpcasterError(EventDecodingError):
    code = "missing_upcaster"


class StoredEventInvalidError(EventDecodingError):
    code = "stored_event_invalid"


class SnapshotIncompatibleError(AgentlogError):
    """A stored state snapshot of another format: the caller folds the stream from the start."""

    code = "snapshot_incompatible"
    status = 500


# --- Idempotency keys (store + command API). ---


class IdempotencyKeyTakenError(ConcurrencyError):
    """Another request recorded this Idempotency-Key first (raced); the caller reads its answer."""

    code = "idempotency_key_taken"
    retriable = True


class IdempotencyKeyReusedError(AgentlogError):
    """The Idempotency-Key was first used for a different request."""

    code = "idempotency_key_reused"
    status = 422
