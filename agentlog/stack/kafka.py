"""A single-node KRaft Apache Kafka broker run from Maven-resolved jars with the installed Java.

Jars are resolved once per Kafka version into <home>/kafka/libs-<version> (one folder per version:
a class path mixing versions is undefined). The broker's data lives in <home>/<name>/data and its
process id in <home>/<name>/broker.pid: `stop` signals only that process.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agentlog.stack.processes import StackError, pid_alive, port_in_use, read_pid, terminate

SERVER_PROPERTIES = """\
# written by agentlog stack: one node, broker + controller, loopback only
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
# A dev/CI box has a core or two and one relay and one projector as clients (a few hundred requests/s
# under load): one network thread and two request handlers; fewer threads polling while idle.
num.network.threads=1
num.io.threads=2
background.threads=2
# The controller writes a no-op metadata record this often (default 500 ms), a raft append and a
# metadata-loader pass each: a single node has no follower that needs the heartbeat.
metadata.max.idle.interval.ms=5000
auto.create.topics.enable=false
log.retention.hours=168
log.message.timestamp.after.max.ms=86400000
"""

# The JVM for a one-node dev/CI broker on a small machine (docs/benchmarks.md, "The broker"):
# - C1 only (TieredStopAtLevel=1): C2 recompiled the broker's hot paths for many minutes after every
#   start (35 s of CPU in a broker's first 15 minutes under the benchmarks, more than all the requests
#   it served; a produce + fetch cost 3.6-4.1 ms in its first minutes against 2.0-2.1 ms with C1),
#   while the requests cost no more with C1's code once C2 is done (2.1-2.4 vs 2.0-2.3 ms);
# - the serial collector: a 512 MB heap of short-lived request garbage needs no concurrent GC threads.
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1", "-XX:+UseSerialGC")

LOG4J2_PROPERTIES = """\
status = warn
name = agentlog-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _require(tool: str, how: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise StackError(f"`{tool}` not found: {how}")
    return path


def resolve_jars(home: Path, kafka_version: str, log4j_version: str) -> Path:
    """Download the broker jars with Maven (cached in ~/.m2) unless this version is already here."""
    libs = home / "kafka" / f"libs-{kafka_version}"
    if (libs / ".complete").exists():
        return libs
    mvn = _require("mvn", "install Maven (`apt-get install -y maven`) so the Kafka jars can be resolved")
    pom_template = resources.files("agentlog.stack").joinpath("kafka-pom.xml").read_text()
    pom = home / "kafka" / f"pom-{kafka_version}.xml"
    pom.parent.mkdir(parents=True, exist_ok=True)
    pom.write_text(pom_template.replace("@KAFKA_VERSION@", kafka_version).replace("@LOG4J_VERSION@", log4j_version))
    shutil.rmtree(libs, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise StackError(
            f"Maven could not resolve Kafka {kafka_version} from Maven Central:\n"
            f"{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )
    (libs / ".complete").write_text(kafka_version)
    return libs


def new_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in base64url, 22 characters) that does not start with
    "-": the storage tool would read one that does as an option (`-t -AbC...`: "expected one
    argument"), which failed one CI start in 64. Kafka's own Uuid.randomUuid() skips them too."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaBroker:
    home: Path
    port: int
    controller_port: int
    kafka_version: str = "4.1.2"
    log4j_version: str = "2.24.3"
    heap: str = "512m"
    name: str = "kafka"

    @property
    def dir(self) -> Path:
        return self.home / self.name

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "broker.pid"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def is_running(self) -> bool:
        return pid_alive(self.pid())

    def _java(self) -> str:
        java = _require("java", "install Java 17 (`apt-get install -y openjdk-17-jre-headless`)")
        return java

    def configure(self) -> Path:
        """Write the config and format the storage once; returns the class path folder."""
        libs = resolve_jars(self.home, self.kafka_version, self.log4j_version)
        data_dir = self.dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        props.write_text(
            SERVER_PROPERTIES.format(port=self.port, controller_port=self.controller_port, data_dir=data_dir)
        )
        (self.dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        if not (data_dir / "meta.properties").exists():
            cluster_id = new_cluster_id()
            result = subprocess.run(
                [
                    self._java(),
                    "-cp",
                    f"{libs}/*",
                    f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                    f"-Dkafka.logs.dir={self.log_dir}",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    "--ignore-formatted",
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        return libs

    def start(self) -> None:
        if self.is_running():
            return
        for port in (self.port, self.controller_port):
            if port_in_use(port):
                raise StackError(
                    f"port {port} is taken by another program, not by agentlog's Kafka in {self.dir}; "
                    "free it or choose others with AGENTLOG_STACK_KAFKA_PORT / _KAFKA_CONTROLLER_PORT"
                )
        libs = self.configure()
        argv = [
            self._java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *JVM_FLAGS,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.dir / "server.properties"),
        ]
        # the child keeps its own copy of the descriptor; ours closes when the broker is started
        with open(self.log_dir / "console.log", "ab") as console:
            proc = subprocess.Popen(
                argv,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
            )
        self.pid_file.write_text(str(proc.pid))

    def stop(self, timeout_s: float = 60.0) -> None:
        pid = self.pid()
        if pid and pid_alive(pid):
            terminate(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """kill -9: for failure tests."""
        pid = self.pid()
        if pid and pid_alive(pid):
            os.kill(pid, 9)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def server_log_tail(self, chars: int = 3000) -> str:
        for name in ("server.log", "console.log"):
            path = self.log_dir / name
            if path.exists() and path.stat().st_size:
                return path.read_text(errors="replace")[-chars:]
        return ""
