"""agentlog inside the agent frameworks people use: a LangGraph checkpoint saver
(`agentlog.integrations.langgraph`, extra `agentlog[langgraph]`) and an OpenAI Agents SDK session
(`agentlog.integrations.openai_agents`, extra `agentlog[openai-agents]`).

Invariant: built on agentlog.client only (each operation composed once as a sequence of client
calls, run by the sync or the async client: steps.py), so an integration installs and imports
without the server (import-linter's contract in pyproject.toml); importing this package imports
no framework: each integration module imports its own.
"""
