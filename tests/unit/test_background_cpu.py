"""agentlog/stack/background.py on a fake /proc and cgroup file system (tmp_path): where a process
goes, that nothing changes where it cannot go, and which PostgreSQL backends count as ours."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentlog.stack import background
from agentlog.stack.background import GROUP, backend_is_ours, background_group, run_in_background


def fake_proc(tmp_path: Path, mountinfo: list[str], cgroup: list[str], pid: int = 4242) -> Path:
    proc = tmp_path / "proc"
    for who in ("self", str(pid)):
        (proc / who).mkdir(parents=True)
        (proc / who / "mountinfo").write_text("\n".join(mountinfo) + "\n")
        (proc / who / "cgroup").write_text("\n".join(cgroup) + "\n")
    return proc


def v1_machine(tmp_path: Path, own: str = "/") -> tuple[Path, Path]:
    mount = tmp_path / "sys/fs/cgroup/cpu"
    (mount / own.lstrip("/")).mkdir(parents=True, exist_ok=True)
    proc = fake_proc(
        tmp_path,
        [
            f"36 25 0:31 / {tmp_path}/sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory",
            f"37 25 0:32 / {mount} rw,relatime shared:15 - cgroup cgroup rw,cpu",
            f"38 25 0:33 / {tmp_path}/sys/fs/cgroup/unified rw,relatime shared:16 - cgroup2 cgroup2 rw",
        ],
        ["4:memory:/x", f"1:cpu:{own}", "0::/"],
    )
    return proc, mount


def test_v1_cpu_hierarchy_child_of_own_group(tmp_path: Path) -> None:
    proc, mount = v1_machine(tmp_path, "/ci/job-7")
    assert background_group(proc) == mount / "ci/job-7" / GROUP


def test_moves_the_process_into_an_idle_group(tmp_path: Path) -> None:
    proc, mount = v1_machine(tmp_path)
    group = mount / GROUP
    group.mkdir()
    (group / "cpu.idle").write_text("0\n")  # what the kernel creates it with
    (group / "cgroup.procs").write_text("")
    assert run_in_background(4242, proc=proc) == group
    assert (group / "cpu.idle").read_text() == "1\n"
    assert (group / "cgroup.procs").read_text() == "4242\n"


def test_stays_put_where_it_cannot_move(tmp_path: Path) -> None:
    proc, _ = v1_machine(tmp_path)
    # a kernel without cpu.idle: the group is made, but there is no such file to read
    assert run_in_background(4242, proc=proc) is None
    no_cgroups = fake_proc(tmp_path / "bare", ["22 1 0:5 / /proc rw - proc proc rw"], [])
    assert background_group(no_cgroups) is None
    assert run_in_background(proc=no_cgroups) is None


def test_v2_goes_beside_its_leaf_when_cpu_is_enabled_there(tmp_path: Path) -> None:
    mount = tmp_path / "cg2"
    leaf = mount / "user.slice/app.scope"
    leaf.mkdir(parents=True)
    mountinfo = [f"30 25 0:26 / {mount} rw,nosuid - cgroup2 cgroup2 rw"]
    proc = fake_proc(tmp_path, mountinfo, ["0::/user.slice/app.scope"])
    (mount / "user.slice/cgroup.subtree_control").write_text("memory pids\n")
    assert background_group(proc) is None  # cpu not delegated: nice alone
    (mount / "user.slice/cgroup.subtree_control").write_text("cpu memory pids\n")
    assert background_group(proc) == mount / "user.slice" / GROUP


def backend(tmp_path: Path, pid: int, comm: str, title: str) -> Path:
    proc = tmp_path / "proc"
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "comm").write_text(comm + "\n")
    (proc / str(pid) / "cmdline").write_bytes(title.encode() + b"\0")
    return proc


def test_only_our_own_local_backend_counts(tmp_path: Path) -> None:
    proc = backend(tmp_path, 700, "postgres", "postgres: agentlog agentlog 127.0.0.1(51234) idle")
    assert backend_is_ours(700, 51234, proc)
    assert not backend_is_ours(700, 5123, proc)  # another client's backend
    assert not backend_is_ours(700, None, proc)  # not a Unix-socket client
    assert not backend_is_ours(701, 51234, proc)  # no such process here: the server is elsewhere
    proc = backend(tmp_path / "b", 702, "python3", "postgres: agentlog agentlog 127.0.0.1(51234) idle")
    assert not backend_is_ours(702, 51234, proc)  # same title, not a postgres process
    proc = backend(tmp_path / "c", 703, "postgres", "postgres: agentlog agentlog [local] idle in transaction")
    assert backend_is_ours(703, None, proc)


class FakeTransport:
    def __init__(self, sockname) -> None:
        self.sockname = sockname

    def get_extra_info(self, name: str):
        return self.sockname if name == "sockname" else None


class FakeConnection:
    def __init__(self, sockname, pid: int) -> None:
        self._transport = FakeTransport(sockname)
        self.pid = pid

    def get_server_pid(self) -> int:
        return self.pid


@pytest.mark.parametrize(
    ("sockname", "moved"),
    [(("127.0.0.1", 51234), True), (("127.0.0.1", 40000), False), (None, False)],
)
def test_backend_hook_moves_only_a_backend_it_can_tell_is_its_own(tmp_path: Path, sockname, moved: bool) -> None:
    proc, mount = v1_machine(tmp_path)
    (proc / "700").mkdir()
    for name in ("mountinfo", "cgroup"):
        (proc / "700" / name).write_text((proc / "self" / name).read_text())
    (proc / "700" / "comm").write_text("postgres\n")
    (proc / "700" / "cmdline").write_bytes(b"postgres: agentlog agentlog 127.0.0.1(51234) idle\0")
    group = mount / GROUP
    group.mkdir()
    (group / "cpu.idle").write_text("0\n")
    (group / "cgroup.procs").write_text("")
    asyncio.run(background.backend_to_background(FakeConnection(sockname, 700), proc))
    assert (group / "cgroup.procs").read_text() == ("700\n" if moved else "")
