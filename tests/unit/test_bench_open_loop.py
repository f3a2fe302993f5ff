"""The system benchmark's load generator (bench/open_loop.py) against a scripted HTTP server on
loopback in this process: the open loop sends on schedule whatever the answers do, counts every
latency from the due time (a stall shows in every command it delays, not in one), keeps warm-up
commands out of the figures, and the closed loop keeps exactly its connections busy; and the
benchmark's overload rule (no percentiles below 95 % of the target rate)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import orjson
import pytest

from bench import bench_system, open_loop
from bench.open_loop import Latencies, LoadGenerator
from bench.open_loop_host import host_summary, print_host
from bench.process_cpu import HostTime
from bench.system_figures import PROJECTOR_METRICS, RELAY_METRICS, STAGE_COUNT, STAGE_SUM, Window, report, summary

BODY = {"role": "assistant", "content": "x" * 20, "agent": "test"}


class Server:
    """Answers POST /v1/sessions/{id}/messages with {"version": n}, n counting per session, after
    `delay(n)` seconds for the n-th request overall (1-based); or with `status`."""

    def __init__(self, delay: Callable[[int], float] = lambda n: 0.0, status: int = 201) -> None:
        self.delay, self.status = delay, status
        self.paths: list[bytes] = []
        self.received_at: list[float] = []
        self.connections = 0
        self.busy = 0
        self.most_busy = 0
        self.versions: dict[bytes, int] = {}
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        loop = asyncio.get_running_loop()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                path = head.split(b" ")[1]
                self.paths.append(path)
                self.received_at.append(loop.time())
                self.busy += 1
                self.most_busy = max(self.most_busy, self.busy)
                await asyncio.sleep(self.delay(len(self.paths)))
                self.versions[path] = self.versions.get(path, 0) + 1
                body = orjson.dumps({"version": self.versions[path]})
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (self.status, len(body), body)
                )
                self.busy -= 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Server], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(server: Server) -> Server:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        servers.append(listening)
        return server

    yield start
    for listening in servers:
        listening.close()


def sessions(n: int) -> list[str]:
    return [f"s-{i}" for i in range(n)]


async def test_open_loop_sends_every_command_round_robin_and_measures_only_after_the_warm_up(serve) -> None:
    server = await serve(Server())
    generator, out = LoadGenerator(server.port, "key", BODY, sessions(7)), Latencies()
    await generator.open_loop(out, rate=200, seconds=0.5, warmup=0.25, watch=None)
    generator.close()

    assert out.sent == 150 and len(server.paths) == 150
    assert server.paths[:8] == [b"/v1/sessions/s-%d/messages" % (i % 7) for i in range(8)]
    assert len(out.accepted) == 100  # the 50 warm-up commands are not measured
    assert len(out.send_lag) == 100 and min(out.send_lag) >= 0  # never sent before its due time
    assert out.errors == []
    assert out.target_rate == 200 and out.elapsed == pytest.approx(0.5)
    assert 50 <= out.answered_in_window <= 100  # answers inside the measured window only


async def test_a_stall_shows_in_the_latency_of_every_command_it_delays(serve) -> None:
    """One connection, the 11th answer held 300 ms: the commands due meanwhile wait for the
    connection, and their latencies count from their due times (a closed loop would have sent them
    later and shown one slow command)."""
    server = await serve(Server(delay=lambda n: 0.3 if n == 11 else 0.0))
    generator, out = LoadGenerator(server.port, "key", BODY, sessions(5), max_connections=1), Latencies()
    await generator.open_loop(out, rate=100, seconds=1.0, warmup=0.0, watch=None)
    generator.close()

    assert len(out.accepted) == 100 and out.errors == []
    slow = [latency for latency in out.accepted if latency >= 0.1]
    assert len(slow) >= 15  # ~20 commands were due while the answer was held past 100 ms
    assert max(out.accepted) >= 0.3
    assert max(out.send_lag) >= 0.2  # they went out late, and that is in their latency


async def test_a_stall_does_not_hold_back_later_sends_while_connections_are_left(serve) -> None:
    server = await serve(Server(delay=lambda n: 0.3 if n == 11 else 0.0))
    generator, out = LoadGenerator(server.port, "key", BODY, sessions(5)), Latencies()
    await generator.open_loop(out, rate=100, seconds=1.0, warmup=0.0, watch=None)
    generator.close()

    assert len(out.accepted) == 100
    assert server.connections >= 2  # a new connection carried the commands due during the stall
    during = [t for t in server.received_at[11:] if t - server.received_at[10] < 0.3]
    assert len(during) >= 15  # they reached the server on schedule, not after the held answer
    assert len([latency for latency in out.accepted if latency >= 0.1]) <= 10  # vs >= 15 on one connection


async def test_connections_idle_past_their_expiry_are_closed_not_reused(serve, monkeypatch) -> None:
    """A server closes keep-alive connections idle for a while (uvicorn: 5 s); a command sent on
    one as it closes is lost. The generator closes them first (IDLE_EXPIRY_S) and opens anew."""
    monkeypatch.setattr(open_loop, "IDLE_EXPIRY_S", 0.1)
    server = await serve(Server())
    generator, out = LoadGenerator(server.port, "key", BODY, sessions(4)), Latencies()
    await generator.closed_loop(out, connections=4, seconds=0.05)
    assert server.connections == 4
    await asyncio.sleep(0.15)  # all four idle past the expiry
    await generator.open_loop(out, rate=100, seconds=0.1, warmup=0.0, watch=None)
    generator.close()

    assert out.errors == [] and len(out.accepted) == 10
    assert server.connections == 5  # one new connection carried them (each answer came before the next was due)


async def test_non_2xx_answers_are_errors_not_latencies(serve) -> None:
    server = await serve(Server(status=503))
    generator, out = LoadGenerator(server.port, "key", BODY, sessions(3)), Latencies()
    await generator.open_loop(out, rate=100, seconds=0.2, warmup=0.0, watch=None)
    generator.close()

    assert out.accepted == [] and out.answered_in_window == 0 and out.achieved_rate == 0
    assert len(out.errors) == 20 and out.errors[0].startswith("HTTP 503")


async def test_closed_loop_keeps_its_connections_busy_and_counts_answers(serve) -> None:
    server = await serve(Server(delay=lambda n: 0.002))
    generator, out = LoadGenerator(server.port, "key", BODY, sessions(10)), Latencies()
    rate = await generator.closed_loop(out, connections=4, seconds=0.3)
    generator.close()

    assert server.connections == 4 and server.most_busy <= 4
    assert rate > 0 and out.errors == []
    assert out.sent == len(server.paths) and rate * 0.3 <= out.sent <= rate * 0.3 + 4


def window(commands_per_s: float, *, generator_cpu: float = 0.0) -> Window:
    return Window(
        seconds=15,
        commands_per_s=commands_per_s,
        failed=0,
        visible_per_s=commands_per_s,
        caught_up_s=0.05,
        commands=int(commands_per_s * 15),
        cpu={name: (1.0, 0.5) for name in ("command API", "query API", "relay", "projector")},
        broker_cpu=0.5,
        machine_busy=20.0,
        wall=16.0,
        metrics=dict.fromkeys((*RELAY_METRICS, *PROJECTOR_METRICS), 10.0),
        generator_cpu=generator_cpu,
    )


def run_of(achieved: int, target: float = 400.0) -> dict:
    out = Latencies(elapsed=15, target_rate=target, answered_in_window=achieved * 15, sent=int(target * 18))
    out.accepted = out.visible = out.after_accept = out.send_lag = [0.01 * (i % 10 + 1) for i in range(1000)]
    return {
        "whole": window(600, generator_cpu=0.6),
        "closed": window(500, generator_cpu=0.7),
        "alone": window(900),
        "target": target,
        "capacity": 500.0,
        "capacity_from": "generator",
        "latencies": out,
        "open": window(400),
    }


def printed_report(
    run: dict, figures: dict, capsys: pytest.CaptureFixture[str], *, seconds: int = 15, rounds: int = 3
) -> str:
    """What bench_system's report prints for `run`, at the default load and windows."""
    report(
        run,
        figures,
        argparse.Namespace(
            sessions=200, seconds=seconds, rounds=rounds, load=0.8, rate=None, warmup_seconds=3, latency_seconds=15
        ),
    )
    return capsys.readouterr().out


@pytest.mark.parametrize(("achieved", "overloaded"), [(400, False), (381, False), (379, True)])
def test_a_run_below_95_percent_of_its_target_rate_is_overloaded_and_has_no_percentiles(
    achieved: int, overloaded: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_of(achieved)
    figures = summary(run)

    assert figures["open_loop_achieved"] == achieved and figures["open_loop_overloaded"] is overloaded
    assert (figures["visible_p99_ms"] is None) is overloaded
    assert (figures["pipeline_p99_ms"] is None) is overloaded
    printed = printed_report(run, figures, capsys)
    assert figures["open_loop_relay_events_per_batch"] == 1.0  # 10 events / 10 batches in the open window
    assert "relay 1.0 events/batch, projector 1.0 events/transaction (warm-up" in printed
    assert ("OVERLOADED" in printed) is overloaded
    assert ("command -> visible" in printed) is not overloaded
    assert figures["open_loop_noisy"] is True  # (20 busy - 6.5 ours) / 16 s = 0.84 cores of other work
    assert ("other work kept 0.84 cores busy during the open loop" in printed) is not overloaded
    assert figures["wrk_cpu_ms_per_command"] == pytest.approx(0.6 * 1000 / 9000)


def test_the_report_splits_the_gap_into_the_pipeline_and_the_command_path_on_shared_cores(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = run_of(400)
    run["alone"].cpu = {"command API": (1.0, 0.5)}  # alone, the pipeline is stopped
    figures = summary(run)

    # the command API and its backends: 1.5 s over 9,000 commands whole, over 13,500 alone
    assert figures["command_path_cpu_ms"] == {
        "whole": pytest.approx(1500 / 9000),
        "alone": pytest.approx(1500 / 13500),
    }
    printed = printed_report(run, figures, capsys)
    assert "the command path itself +0.056 ms (0.167 against 0.111 alone" in printed


def test_host_summary_finds_the_worst_half_second_and_what_the_machine_did_then():
    lat = Latencies()
    for i in range(40):  # 4 s of answers, 10 per second; the second half second of second 2 stalls
        due = 100.0 + i * 0.1
        lat.accepted_due.append(due)
        lat.accepted.append(0.6 if 102.5 <= due < 103.0 else 0.005)
    # 1 busy core throughout, the command API's; from 102.5 to 103.0 the machine waits on the disk
    # instead, with 0.8 cores busy: autovacuum takes half a core, something not named 0.3
    samples, busy, iowait, api, vacuum = [], 0.0, 0.0, 0.0, 0.0
    for i in range(45):
        at = 100.0 + i * 0.1
        processes = {"command API": api, "postgres": vacuum, "autovacuum": vacuum}
        samples.append(HostTime(at, busy, iowait, steal=at * 0.1, processes=processes))
        stalled = 102.5 <= at < 103.0
        busy += 0.08 if stalled else 0.1
        iowait += 0.1 if stalled else 0.0
        api += 0.0 if stalled else 0.1
        vacuum += 0.05 if stalled else 0.0
    # the disk probe: 2 ms flushes, one of 400 ms during the stall, one of 900 ms before the window
    fsyncs = [(99.0, 0.9)] + [(100.0 + i * 0.05, 0.4 if i == 55 else 0.002) for i in range(80)]
    host = host_summary(lat, samples, fsyncs)
    assert host["worst_at_s"] == 2.5
    assert host["worst_p50_ms"] == pytest.approx(600)
    assert host["worst_busy_cores"] == pytest.approx(0.8)
    assert host["worst_iowait_cores"] == pytest.approx(1.0)
    assert host["steal_cores"] == pytest.approx(0.1)
    worst = host["worst_processes"]
    assert list(worst) == ["postgres", "autovacuum", "anything else", "command API"]  # busiest first
    assert worst["autovacuum"] == pytest.approx(0.5)
    assert worst["anything else"] == pytest.approx(0.3)  # autovacuum is not counted twice
    assert worst["command API"] == pytest.approx(0.0, abs=1e-6)
    assert host["fsync_max_ms"] == pytest.approx(400)  # the one before the window is not counted
    assert host["fsync_p50_ms"] == pytest.approx(2)
    assert host["fsync_over_50ms"] == 1
    assert host["worst_fsync_max_ms"] == pytest.approx(400)  # 102.75 s is in the worst half second
    assert "fsync_p99_ms" not in host_summary(lat, samples)
    assert host_summary(Latencies(), samples) == {}


def test_interleaved_rounds_combine_into_one_ratio_and_each_round_is_reported(capsys: pytest.CaptureFixture[str]):
    # two rounds: whole 600/s then 400/s for 5 s each, alone 800/s twice
    wholes = [replace(window(600), seconds=5, commands=3000), replace(window(400), seconds=5, commands=2000)]
    alones = [replace(window(800), seconds=5, commands=4000, reference_ms=r) for r in (60.0, 90.0)]
    whole = Window.combine(wholes)
    assert whole.commands_per_s == pytest.approx(500) and whole.seconds == 10 and whole.commands == 5000
    assert whole.cpu["relay"] == (2.0, 1.0) and whole.wall == 32.0 and whole.broker_cpu == 1.0
    assert whole.metrics[RELAY_METRICS[0]] == 20.0
    assert Window.combine(alones).reference_ms == 75.0  # the median machine speed
    run = {
        **run_of(400),
        "whole": whole,
        "alone": Window.combine(alones),
        "rounds": list(zip(wholes, alones, strict=True)),
    }
    figures = summary(run)
    assert figures["ratio"] == pytest.approx(500 / 800)
    assert figures["ratio_rounds"] == [pytest.approx(0.75), pytest.approx(0.5)]
    printed = printed_report(run, figures, capsys, seconds=10, rounds=2)
    assert "ratio 0.62 (goal >= 0.8)" in printed
    assert (
        "per round, whole|alone interleaved (commands/s, machine speed before each): "
        "0.75 (600|800/s, 0|60 ms), 0.50 (400|800/s, 0|90 ms)" in printed
    )


def test_the_disk_share_of_the_tail_counts_the_commands_due_in_a_stall_and_its_wake(capsys):
    lat = Latencies()
    for i in range(400):  # 4 s, 100 commands a second
        due = 100.0 + i * 0.01
        # a 200 ms flush at 101.0: what was due from then to 102.2 is slow, and one command later
        slow = 101.0 <= due < 102.2 or i == 350
        for latency_list, due_list in ((lat.accepted, lat.accepted_due), (lat.visible, lat.visible_due)):
            latency_list.append(0.3 if slow else 0.02)
            due_list.append(due)
    samples = [HostTime(100.0 + i * 0.1, i * 0.1, 0.0, 0.0, {}) for i in range(45)]
    fsyncs = [(100.0 + i * 0.05, 0.2 if i == 20 else 0.001) for i in range(80)]
    host = host_summary(lat, samples, fsyncs)

    assert host["fsync_over_50ms"] == 1
    assert host["slow_visible"] == 121 and host["slow_visible_in_stalls"] == 120  # not the one at 103.5
    assert host["visible_outside_stalls"] == 280
    assert host["visible_p99_outside_stalls_ms"] == pytest.approx(20)  # 1 slow of 280 is under the 1 %
    assert host["worst_at_s"] == 1.0 and host["worst_fsync_max_ms"] == pytest.approx(200)
    print_host(host)
    assert (
        "120 of the 121 commands visible after more than 100 ms were due in a stall or the 1 s after it; "
        "the 280 commands due elsewhere: command -> visible p99 20.0 ms" in capsys.readouterr().out
    )


def test_the_worst_half_second_names_a_stall_in_the_second_before_it(capsys):
    lat = Latencies()
    for i in range(40):
        due = 100.0 + i * 0.1
        lat.accepted_due.append(due)
        lat.accepted.append(0.3 if 102.0 <= due < 102.5 else 0.01)  # the wake, after the stall
    samples = [HostTime(100.0 + i * 0.1, i * 0.1, 0.0, 0.0, {}) for i in range(45)]
    fsyncs = [(100.0 + i * 0.05, 0.3 if i == 32 else 0.001) for i in range(80)]  # 300 ms at 101.6
    host = host_summary(lat, samples, fsyncs)
    assert host["worst_at_s"] == 2.0 and host["worst_fsync_max_ms"] == pytest.approx(300)
    print_host(host)
    assert "at worst 300.0 ms in the worst half second or the second before it" in capsys.readouterr().out


def test_the_report_names_each_pipeline_half_and_how_busy_the_command_apis_one_thread_was(capsys) -> None:
    run = run_of(400)
    opened = run["open"]
    opened.metrics[STAGE_SUM.format("append_to_kafka")] = 3.0  # 3 s over 100 events: 30 ms each
    opened.metrics[STAGE_COUNT.format("append_to_kafka")] = 100
    opened.metrics[STAGE_SUM.format("kafka_to_read_model")] = 2.0
    opened.metrics[STAGE_COUNT.format("kafka_to_read_model")] = 100
    opened.api_thread, run["closed"].api_thread = (0.71, 0.21), (0.84, 0.16)
    figures = summary(run)

    assert figures["open_loop_stage_ms"] == {
        "append_to_kafka": pytest.approx(30.0),
        "kafka_to_read_model": pytest.approx(20.0),
    }
    printed = printed_report(run, figures, capsys)
    assert "append -> Kafka acknowledged 30.0 ms, Kafka -> read models committed 20.0 ms (means" in printed
    assert "on a core 71%, waiting for one 21% of the open loop (closed loop at capacity: 84%, 16%)" in printed
    assert "busy 92% of the time, it has 8% left" in printed


def test_without_stage_histograms_or_schedstat_the_report_leaves_those_lines_out(capsys) -> None:
    run = run_of(400)
    for key in list(run["open"].metrics):
        if "stage" in key:
            del run["open"].metrics[key]
    figures = summary(run)

    assert figures["open_loop_stage_ms"] == {"append_to_kafka": None, "kafka_to_read_model": None}
    printed = printed_report(run, figures, capsys)
    assert "pipeline stages" not in printed and "command API's loop" not in printed


@pytest.mark.parametrize("argv", [["--rounds", "1"], ["--seconds", "30"], ["--rounds", "0"]])
def test_a_window_alone_must_end_before_the_paused_projector_leaves_its_group(argv, capsys) -> None:
    with pytest.raises(SystemExit):
        bench_system.main(argv)
    assert "--seconds / --rounds must be under 9 s" in capsys.readouterr().err
