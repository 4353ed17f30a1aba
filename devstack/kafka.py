"""A single-node Kafka broker in KRaft mode, its jars fetched from Maven Central once."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .processes import Child, free_port, port_open, wait_until

POM = Path(__file__).with_name("kafka-pom.xml")
KAFKA_VERSION = "4.0.2"
CACHE = Path(os.environ.get("TOWNFLOW_CACHE", Path.home() / ".cache" / "townflow"))

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka.server.KafkaServer
logger.kafka.level = INFO
"""


def _tool(name: str) -> str:
    """The full path of a program on PATH, so what runs is what `which` shows."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (see the README: the machine's JDK and Maven)")
    return path


def kafka_jars() -> Path:
    """The folder of the broker's runtime jars; downloads them with Maven on first use."""
    libs = CACHE / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        [
            _tool("mvn"), "-q", "-B", "-f", str(POM),
            "org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies",
            f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
        ],
        check=True,
    )
    tmp.rename(libs)
    return libs


@dataclass
class Kafka:
    workdir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    child: Child | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.workdir / "log4j2.properties").write_text(LOG4J2)
        return path

    def start(self, timeout: float = 60.0) -> Kafka:
        libs = kafka_jars()
        config = self._write_config()
        classpath = f"{libs}/*"
        cluster_id_file = self.workdir / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(_cluster_id())
        subprocess.run(
            [_tool("java"), "-cp", classpath, "kafka.tools.StorageTool", "format",
             "-t", cluster_id_file.read_text(), "-c", str(config), "--ignore-formatted"],
            check=True, capture_output=True,
        )
        # TOWNFLOW_KAFKA_FAST_START=1 (the stack tests set it): the client compiler alone (C1) for a
        # broker that lives minutes. Measured on a started stack: 8 s of broker CPU to start instead
        # of 14, and 4 % of a core idle instead of 8 %; the peak speed it gives up no test needs.
        self.child = Child(
            "kafka",
            ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
             "-XX:TieredStopAtLevel=1" if os.environ.get("TOWNFLOW_KAFKA_FAST_START") else "-server",
             f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(config)],
            log=self.workdir / "kafka.log",
        ).start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            assert self.child is not None
            self.child.check_alive()
            return port_open(self.port)

        wait_until(ready, timeout, f"Kafka on port {self.port}")

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        """Controlled shutdown (SIGTERM); `start` brings the broker back on the same ports with the
        same log directories, so topics, offsets and the cluster id survive."""
        if self.child is not None:
            self.child.stop(timeout=30)


def _cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, as Kafka's own `random-uuid` makes them; and,
    as Kafka's Uuid does, never starting with '-', which the storage tool would read as an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
