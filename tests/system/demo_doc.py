"""docs/demo.md (and the README's "Try it") as data: every `curl` line of their bash blocks parsed
into an HTTP request, so a test can send exactly what the doc tells a user to send.

Invariant: a curl line the parser does not understand fails loudly (never silently skipped), so
the doc can only show requests the test really ran. Lines ending in `&` form a group that the
test sends concurrently, as the shell would; `wait` ends the group.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from tests.system.processes import ROOT

DOC = ROOT / "docs" / "demo.md"
README = ROOT / "README.md"


@dataclass
class CurlRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    parallel: bool = False  # the line ended in `&`: sent together with its neighbours

    @property
    def path(self) -> str:
        return self.url.split("/", 1)[1] if "/" in self.url else ""


def _logical_lines(block: str) -> list[str]:
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def parse_curl(line: str, variables: dict[str, str]) -> CurlRequest:
    parallel = line.endswith("&")
    tokens = shlex.split(line.rstrip("&"))
    if tokens[0] != "curl":
        raise ValueError(f"not a curl line: {line}")
    request = CurlRequest(method="GET", url="", parallel=parallel)
    args = iter(tokens[1:])
    for token in args:
        if token == "-s":
            continue
        if token == "-X":
            request.method = next(args)
        elif token == "-H":
            name, _, value = next(args).partition(":")
            request.headers[name.strip()] = value.strip()
        elif token == "-d":
            request.body = next(args).encode()
            if request.method == "GET":
                request.method = "POST"
        elif not token.startswith("-") and not request.url:
            request.url = token
        else:
            raise ValueError(f"curl option {token!r} not understood in: {line}")
    for name, value in variables.items():
        request.url = request.url.replace(f"${name}", value)
        request.headers = {k: v.replace(f"${name}", value) for k, v in request.headers.items()}
    return request


def demo_requests(variables: dict[str, str], markdown: str | None = None) -> list[list[CurlRequest]]:
    """The doc's requests in order, grouped: each group is sent at once (one request, or a `&` set)."""
    markdown = DOC.read_text() if markdown is None else markdown
    groups: list[list[CurlRequest]] = []
    pending: list[CurlRequest] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for line in _logical_lines(block):
            if line.startswith("curl "):
                request = parse_curl(line, variables)
                if request.parallel:
                    pending.append(request)
                else:
                    groups.append([request])
            elif line == "wait" and pending:
                groups.append(pending)
                pending = []
    assert not pending, "a `&` group in docs/demo.md has no `wait`"
    return groups
