"""Fixtures shared by the integration tests of the client and the framework integrations: the whole
of agentlog in a thread of the test process (tests/integration/client_support.py)."""

from tests.integration.client_support import client, client_stack, either, keys, stack_pool

__all__ = ["client", "client_stack", "either", "keys", "stack_pool"]
