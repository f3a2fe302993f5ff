"""agentlog.client: a Python client of agentlog's command and query APIs, sync and async, on httpx.

    from agentlog.client import AgentlogClient

    with AgentlogClient(api_key) as client:
        session = client.start_session(workflow="support-case").session_id
        client.add_message(session, "user", "I was charged twice")
        print(client.get_session(session).counts.messages)   # 1: reads see this client's writes

Invariants: it needs httpx and pydantic only (`pip install agentlog[client]`) and imports nothing
of the server (import-linter's contract in pyproject.toml; tests/unit/test_client_imports.py);
every write keeps one Idempotency-Key across its retries, so a retried write is stored once.
"""

from agentlog.client.async_client import AsyncAgentlogClient
from agentlog.client.errors import (
    AgentlogError,
    AuthenticationError,
    ConcurrencyConflictError,
    ConnectionFailedError,
    FieldError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProblemError,
    ProjectionBehindError,
    RateLimitedError,
    RuleViolationError,
    ServerError,
    UnavailableError,
)
from agentlog.client.models import (
    Approval,
    AuditEntry,
    Blame,
    BlameEntry,
    Fork,
    ForkPage,
    HistoryEntry,
    KnownApproval,
    KnownMessage,
    KnownToolCall,
    ModelCallPage,
    ModelCallSummary,
    ModelContext,
    ModelRequestRecord,
    ModelResponseRecord,
    ModelUsage,
    Page,
    PathChange,
    PathValue,
    Session,
    SessionCounts,
    SessionDiff,
    SessionPage,
    SessionState,
    StateAt,
    StateChanges,
    StateSection,
    StepPair,
    TimelineEntry,
    ToolCall,
    ToolStats,
    Where,
    WriteResult,
)
from agentlog.client.retry import NO_RETRIES, RetryPolicy
from agentlog.client.sync_client import AgentlogClient

__all__ = [
    "NO_RETRIES",
    "AgentlogClient",
    "AgentlogError",
    "Approval",
    "AsyncAgentlogClient",
    "AuditEntry",
    "AuthenticationError",
    "Blame",
    "BlameEntry",
    "ConcurrencyConflictError",
    "ConnectionFailedError",
    "FieldError",
    "Fork",
    "ForkPage",
    "HistoryEntry",
    "InvalidRequestError",
    "KnownApproval",
    "KnownMessage",
    "KnownToolCall",
    "ModelCallPage",
    "ModelCallSummary",
    "ModelContext",
    "ModelRequestRecord",
    "ModelResponseRecord",
    "ModelUsage",
    "NotFoundError",
    "Page",
    "PathChange",
    "PathValue",
    "PermissionDeniedError",
    "ProblemError",
    "ProjectionBehindError",
    "RateLimitedError",
    "RetryPolicy",
    "RuleViolationError",
    "ServerError",
    "Session",
    "SessionCounts",
    "SessionDiff",
    "SessionPage",
    "SessionState",
    "StateAt",
    "StateChanges",
    "StateSection",
    "StepPair",
    "TimelineEntry",
    "ToolCall",
    "ToolStats",
    "UnavailableError",
    "Where",
    "WriteResult",
]
