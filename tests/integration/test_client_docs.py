"""docs/integrations.md is executed: each ```python example runs as a user would run it (a new
Python process, the key in AGENTLOG_API_KEY) against a running agentlog, and prints exactly the
```text block that follows it in the doc."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def examples(markdown: str) -> list[tuple[str, str]]:
    """(code, expected output) of every python block followed by a text block."""
    return re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", markdown, flags=re.S)


async def test_integrations_doc_examples_print_what_the_doc_shows(client_stack, keys, tmp_path) -> None:
    cases = examples(DOC.read_text())
    assert len(cases) >= 4  # the client, sync and async; LangGraph; the OpenAI Agents SDK
    env = {**os.environ, "AGENTLOG_API_KEY": keys.writer}
    for code, expected in cases:
        code = code.replace("http://127.0.0.1:8000", client_stack.commands_url)
        code = code.replace("http://127.0.0.1:8001", client_stack.queries_url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0, err.decode()
        assert out.decode().rstrip() == expected.rstrip(), f"{code}\n--- it printed:\n{out.decode()}"
