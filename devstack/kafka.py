"""A single-node Kafka broker in KRaft mode, its jars fetched from Maven Central once."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .processes import Child, free_port, wait_for_port

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
            # The controller's no-op record every 500 ms (the default) keeps an idle broker busy: every
            # 5 s, an idle broker's CPU 0.95 s → 0.61 s a 40 s (measured twice); make test runs eleven.
            "metadata.max.idle.interval.ms": "5000",
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.workdir / "log4j2.properties").write_text(LOG4J2)
        return path

    def start(self, timeout: float = 60.0) -> Kafka:
        libs = kafka_jars()
        config = self._write_config()
        classpath = f"{libs}/*"
        fast = bool(os.environ.get("TOWNFLOW_KAFKA_FAST_START"))
        cluster_id_file = self.workdir / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(_cluster_id())
        # A broker started again (after `stop`) keeps its formatted log directories: formatting them
        # once more would only start another JVM to find them formatted.
        if not (self.workdir / "data" / "meta.properties").exists():
            subprocess.run(
                [_tool("java"), *(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *self._archive.reading()]
                                  if fast else []),
                 "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", cluster_id_file.read_text(), "-c", str(config), "--ignore-formatted"],
                check=True, capture_output=True,
            )
        # TOWNFLOW_KAFKA_FAST_START=1 (the stack tests set it): the client compiler alone (C1) for a
        # broker that lives minutes. Measured on a started stack: 8 s of broker CPU to start instead
        # of 14, and 4 % of a core idle instead of 8 %; the peak speed it gives up no test needs.
        # And the broker's classes from a class-data-sharing archive (see BrokerClassArchive).
        self.child = Child(
            "kafka",
            ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
             *(["-XX:TieredStopAtLevel=1", *self._archive.options()] if fast else ["-server"]),
             f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(config)],
            log=self.workdir / "kafka.log",
        ).start()
        self.wait_ready(timeout)
        return self

    @property
    def _archive(self) -> BrokerClassArchive:
        return BrokerClassArchive(CACHE / f"kafka-{KAFKA_VERSION}", self.workdir)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for_port(self.child, self.port, timeout, f"Kafka on port {self.port}")

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
            assert self.child.proc is not None
            self._archive.keep(killed=self.child.proc.returncode == -signal.SIGKILL)


@dataclass(frozen=True)
class BrokerClassArchive:
    """A class-data-sharing archive of the broker's classes, in the cache beside its jars, for the
    fast starts of the tests (TOWNFLOW_KAFKA_FAST_START): the JVM maps the classes in instead of
    loading and verifying them from the jars. Measured on the 2-core machine: the broker's CPU until
    its port opens 1.9 s instead of 3.1, the storage tool's format 0.7 s instead of 1.8 (with C1
    and the serial collector as well). `make test` starts eleven brokers (ten stacks, and the chaos run's restart).

    No archive yet: the broker writes one as it exits (-XX:ArchiveClassesAtExit, the classes it
    loaded while it ran), into its own folder; `keep` moves it into the cache, so the next brokers
    start from it. The archive names the JDK it was made by: another JDK makes its own. A JDK that
    finds an archive it cannot use runs without it (-Xshare:auto, the default)."""

    cache: Path
    workdir: Path

    @property
    def path(self) -> Path:
        java = Path(os.path.realpath(_tool("java")))
        jdk = hashlib.sha256(f"{java}:{java.stat().st_mtime_ns}".encode()).hexdigest()[:12]
        return self.cache / f"broker-classes-{jdk}.jsa"

    @property
    def _made_here(self) -> Path:
        return self.workdir / "broker-classes.jsa"

    def reading(self) -> list[str]:
        """Options of a JVM that reads the archive (when there is one)."""
        return [f"-XX:SharedArchiveFile={self.path}"] if self.path.exists() else []

    def options(self) -> list[str]:
        """The broker's options: read the archive, or write one as it exits."""
        return self.reading() or [f"-XX:ArchiveClassesAtExit={self._made_here}"]

    def keep(self, killed: bool) -> None:
        """After the broker exited: the archive it wrote, if any, becomes the cache's (copied beside
        it, then renamed: other brokers may be starting from the cache meanwhile). A broker killed
        (it did not stop in time) may have left half an archive: that one is not kept."""
        made, path = self._made_here, self.path
        if killed or not made.exists() or path.exists():
            made.unlink(missing_ok=True)
            return
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        shutil.copyfile(made, partial)
        os.replace(partial, path)
        made.unlink()


def _cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, as Kafka's own `random-uuid` makes them; and,
    as Kafka's Uuid does, never starting with '-', which the storage tool would read as an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
