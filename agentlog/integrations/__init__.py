"""agentlog inside the agent frameworks people use: a LangGraph checkpoint saver
(`agentlog.integrations.langgraph`, extra `agentlog[langgraph]`), an OpenAI Agents SDK session
(`agentlog.integrations.openai_agents`, extra `agentlog[openai-agents]`), and re-runs served from
the record (`agentlog.integrations.replayer`, client only; for an Agents SDK agent under its own
Runner, `agentlog.integrations.openai_agents_replay`).

Invariant: built on agentlog.client only (each operation composed once as a sequence of client
calls, run by the sync or the async client: steps.py), so an integration installs and imports
without the server (import-linter's contract in pyproject.toml); importing this package imports
no framework: each integration module imports its own.
"""
