"""Background work that runs only on CPU time the request path leaves idle: the relay and the
projector (and their PostgreSQL backends), where they share a small machine with the APIs and
PostgreSQL. The stack's Kafka broker keeps its priority: it serves every client of the stack.

Why: on two cores, `agentlog dev` as bench_system runs it, the command API's closed loop took
0.76 of its capacity alone with the pipeline at nice 10, and 0.89 with the pipeline's processes
in a cgroup whose `cpu.idle` is 1 (six alternated pairs of 8 s windows on one system, every pair
in its favour: docs/benchmarks.md, stop 31). Nice lowers a process's share of a busy core, but
the scheduler still lets it finish its slice when an API request or a PostgreSQL backend wakes
up; an idle group's tasks are preempted at once, and they still get every core nobody else wants,
so the pipeline keeps up whenever the machine is not saturated.

The relay runs there by default, the projector no longer (AGENTLOG_PROJECTOR_IDLE_CPU, default
false since stop 34): with the command API's group commit, the same machine takes a fifth more
commands per second, and at 80 % of that the projector on idle time fell behind (command ->
visible p99 0.17-1.7 s); at nice 10, with its backends at their normal priority, it keeps up.

How: the process joins the child `agentlog-background` of its own CPU cgroup (created on first
use with `cpu.idle` = 1), in cgroup v1's `cpu` hierarchy or in cgroup v2 where the `cpu`
controller is enabled for children. Nothing of it is required: without cgroups, without write
access to them (an unprivileged user, a container), or with a kernel older than 5.15 (no
`cpu.idle`), the process stays where it was, with its nice (agentlog/cli/process.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GROUP = "agentlog-background"
PROC = Path("/proc")


def _mounts(proc: Path) -> tuple[Path | None, Path | None]:
    """(cgroup v1 `cpu` hierarchy mount, cgroup v2 mount) from /proc/self/mountinfo."""
    v1 = v2 = None
    try:
        lines = (proc / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        # "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:14 - cgroup cgroup rw,cpu"
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup" and "cpu" in tail[2].split(",") and v1 is None:
            v1 = Path(fields[4])
        elif tail[0] == "cgroup2" and v2 is None:
            v2 = Path(fields[4])
    return v1, v2


def _own_groups(proc: Path, pid: int) -> tuple[str | None, str | None]:
    """(the process's v1 `cpu` cgroup path, its v2 cgroup path) from /proc/<pid>/cgroup."""
    v1 = v2 = None
    try:
        lines = (proc / str(pid or "self") / "cgroup").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        # "1:cpu:/", "4:cpu,cpuacct:/user.slice", "0::/user.slice/session-1.scope"
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v1, v2


def background_group(proc: Path = PROC, pid: int = 0) -> Path | None:
    """Where process `pid` (0: this one) would go: the idle group beside its own CPU cgroup."""
    mount_v1, mount_v2 = _mounts(proc)
    own_v1, own_v2 = _own_groups(proc, pid)
    if mount_v1 is not None and own_v1 is not None:
        return mount_v1 / own_v1.lstrip("/") / GROUP
    if mount_v2 is not None and own_v2 is not None:
        own = mount_v2 / own_v2.lstrip("/")
        # a v2 group with processes cannot have children with controllers, so the idle group goes
        # beside it, under its parent (unless it is the root, which may hold both)
        parent = own if own == mount_v2 else own.parent
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
        except OSError:
            return None
        if "cpu" in enabled:
            return parent / GROUP
    return None


def run_in_background(pid: int = 0, *, proc: Path = PROC) -> Path | None:
    """Move process `pid` (0: this one, with all its threads) into the idle group; returns the
    group, or None where that is not possible here (then nothing changed)."""
    group = background_group(proc, pid)
    if group is None:
        return None
    try:
        group.mkdir(exist_ok=True)
        if (group / "cpu.idle").read_text().strip() != "1":
            (group / "cpu.idle").write_text("1\n")
        (group / "cgroup.procs").write_text(f"{pid or os.getpid()}\n")
    except OSError as exc:  # no permission, no cpu.idle (kernel < 5.15), a read-only cgroupfs
        log.debug("not moved to the idle CPU group %s: %r", group, exc)
        return None
    return group


def backend_is_ours(pid: int, local_port: int | None, proc: Path = PROC) -> bool:
    """Whether process `pid` on this machine is the PostgreSQL backend serving our connection from
    `local_port` (None: a Unix socket): a server elsewhere has pids that mean nothing here. Its
    process title names the client ("postgres: user db 127.0.0.1(51234) idle", or "[local]")."""
    try:
        comm = (proc / str(pid) / "comm").read_text().strip()
        title = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    words = title.split()
    if comm != "postgres" or words[:1] != ["postgres:"]:
        return False
    client = "[local]" if local_port is None else f"({local_port})"
    return any(word.endswith(client) for word in words)


async def backend_to_background(conn: Any, proc: Path | None = None) -> None:
    """A connection hook (eventstore.db.CONNECTION_HOOKS) of a background process: its PostgreSQL
    backend, when it runs on this machine, joins the idle group too (the relay's and the
    projector's backends do a third of their work: docs/benchmarks.md, stop 31)."""
    transport = getattr(conn, "_transport", None)
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        port: int | None = int(sockname[1])
    elif isinstance(sockname, str | bytes):
        port = None  # a Unix socket: the server is on this machine
    else:
        return
    proc = proc or PROC
    pid = conn.get_server_pid()
    if backend_is_ours(pid, port, proc):
        run_in_background(pid, proc=proc)
