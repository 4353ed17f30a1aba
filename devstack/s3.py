"""A real S3-compatible server for local runs and tests: SeaweedFS, built once from the Go module
proxy into the cache (as Kafka's jars come from Maven Central), started as one process on free
loopback ports with the deployment's credentials. Photos (issue #29) go to one bucket of it per
stack, which `bucket` creates.

Why SeaweedFS, and why `weed server -s3`: MinIO's server is source-only now and a mock (moto) is
not a server; SeaweedFS is served by the module proxy. `weed server` runs its master, one volume
server, the filer and the S3 gateway in one process, which is what S3 needs (the gateway stores
through the filer, the filer through the volume server) and nothing more: one process to start,
to watch and to stop. The filer keeps its metadata in an embedded LevelDB in the work folder, so
nothing else runs. docs/attachments.md has the figures (start time, memory)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .kafka import CACHE
from .processes import Child, free_port, wait_for_port, wait_until

MODULE = "github.com/seaweedfs/seaweedfs"
# A pseudo-version of SeaweedFS's main branch, the one the module proxy serves; its module hash as
# sum.golang.org records it (`go mod download` checks the download against the checksum database,
# and we check what it reports against this), so a changed source fails rather than builds.
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
SEAWEEDFS_SUM = "h1:LOYZFToHq9F7pSR6lkPGfkM8RmHlVFrzndKdhmNZjrU="
# Its go.mod has `replace` directives, so `go install module@version` refuses it: the source is
# downloaded, copied out of the read-only module cache, and built there.


def _go() -> str:
    path = shutil.which("go")
    if path is None:
        raise FileNotFoundError("go is not installed (SeaweedFS is built from the Go module proxy: install Go 1.26+)")
    return path


def weed_binary() -> Path:
    """The `weed` binary of SEAWEEDFS_VERSION in the cache, built on first use (minutes on two cores)."""
    home = CACHE / f"seaweedfs-{SEAWEEDFS_VERSION}"
    binary = home / "weed"
    if binary.exists():
        return binary
    env = {**os.environ, "GOFLAGS": "-buildvcs=false -mod=readonly"}
    found = json.loads(subprocess.run([_go(), "mod", "download", "-json", f"{MODULE}@{SEAWEEDFS_VERSION}"],
                                      check=True, capture_output=True, text=True, env=env).stdout)
    if found.get("Sum") != SEAWEEDFS_SUM:
        raise RuntimeError(f"{MODULE}@{SEAWEEDFS_VERSION} has hash {found.get('Sum')}, not {SEAWEEDFS_SUM}: not building it")
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seaweedfs-build-") as build:
        source = Path(build) / "src"
        shutil.copytree(found["Dir"], source)
        for folder, _, files in os.walk(source):  # the module cache's copy is read-only
            os.chmod(folder, 0o755)  # noqa: S103 - a build folder of our own, removed after
            for name in files:
                os.chmod(Path(folder) / name, 0o644)
        partial = home / "weed.partial"
        subprocess.run([_go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "./weed"],
                       cwd=source, check=True, env=env)
    partial.rename(binary)
    return binary


def _free_port_pair() -> tuple[int, int]:
    """A free port and a free one for its gRPC: SeaweedFS listens on both for each component."""
    return free_port(), free_port()


@dataclass
class SeaweedFS:
    """One `weed server -s3` on loopback: S3 at `endpoint`, `access_key`/`secret_key` its one
    identity (an admin of its buckets)."""

    workdir: Path
    access_key: str = "townflow"
    secret_key: str = field(default_factory=lambda: os.urandom(18).hex())
    s3_port: int = 0
    child: Child | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        binary = weed_binary()
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "townflow", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        os.chmod(config, 0o600)
        self.s3_port = self.s3_port or free_port()
        (master, master_grpc), (volume, volume_grpc), (filer, filer_grpc) = (_free_port_pair() for _ in range(3))
        s3_grpc = free_port()  # by default the S3 port + 10000, which another stack's may hold
        self.child = Child("seaweedfs", [
            # No usage report to seaweedfs.com (the machines reach only the registries anyway).
            str(binary), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}", "-master.telemetry=false",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            # Small volumes, grown on demand: the default 30 GB limit reserves nothing but takes a
            # while to plan on a test's empty disk folder.
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            "-filer", f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3", f"-s3.port={self.s3_port}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            # Its Iceberg and Lance catalogue servers listen on fixed ports (8181, 9101) by default:
            # off, so two stacks' servers can run side by side and nothing but S3 listens.
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-volume.preStopSeconds=0",
        ], log=self.workdir / "seaweedfs.log").start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for_port(self.child, self.s3_port, timeout, f"SeaweedFS's S3 on port {self.s3_port}")

    def env(self, bucket: str) -> dict[str, str]:
        """A service's settings for this server and `bucket`."""
        return {"TOWNFLOW_S3_ENDPOINT": self.endpoint, "TOWNFLOW_S3_BUCKET": bucket,
                "TOWNFLOW_S3_ACCESS_KEY": self.access_key, "TOWNFLOW_S3_SECRET_KEY": self.secret_key}

    def bucket(self, name: str, timeout: float = 60.0, object_lock: bool = False) -> str:
        """Create the bucket `name` (a stack's, one per deployment; with `object_lock`, one with
        Object Lock on, for evidence), once S3 answers; its name."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        from townflow_shared.objects import ObjectStore, StoreUnavailable

        store = ObjectStore(self.endpoint, name, self.access_key, self.secret_key, timeout_seconds=5)

        def created() -> bool:
            assert self.child is not None
            self.child.check_alive()
            try:  # in a thread of its own: a caller inside an event loop (bench-scale's) cannot asyncio.run
                with ThreadPoolExecutor(1) as one:
                    one.submit(asyncio.run, store.ensure_bucket(object_lock)).result()
            except StoreUnavailable:  # the filer behind the gateway is not up yet
                return False
            return True

        wait_until(created, timeout, f"bucket {name} on SeaweedFS", interval=0.3)
        return name

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 2 s: its graceful shutdown waits 15 s for its parts to drain
        (measured), and a local run's or a test's photos are not kept anyway."""
        if self.child is not None:
            self.child.stop(timeout=2)
