"""`devstack up` reports a service ready only when its own process answers on its port: another
process on the port (another stack's service that took it first) does not count, and a service
that lost its preferred port to one starts again on a free port. No stack: small child processes."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import free_port, holds_port
from devstack.stack import REPO, ServiceProcess, Stack

# A stand-in for a service: answers /readyz 200 on TOWNFLOW_HTTP_PORT after SLOW_START seconds.
_SERVICE = r"""
import http.server, os, time
time.sleep(float(os.environ.get("SLOW_START", "0")))
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ready")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["TOWNFLOW_HTTP_PORT"])), Ready).serve_forever()
"""


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"someone else's ready")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def another_stacks_service() -> Iterator[int]:
    """A port held by another process's server that answers /readyz 200."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _service(tmp_path: Path, port: int, slow_start: float = 0.0) -> ServiceProcess:
    return ServiceProcess("stand-in", port, {"TOWNFLOW_HTTP_PORT": str(port), "SLOW_START": str(slow_start)},
                          tmp_path / "stand-in.log", argv=[sys.executable, "-c", _SERVICE])


def test_a_service_is_not_ready_while_another_process_answers_on_its_port(
        tmp_path: Path, another_stacks_service: int) -> None:
    process = _service(tmp_path, another_stacks_service, slow_start=1.0).start(wait=False)
    try:
        assert not process.ready()  # alive, the port answers 200 — but not from our child
        with pytest.raises(RuntimeError, match="exited"):
            process.wait_ready(timeout=20)  # and then it dies on bind: said, not reported ready
        assert process.lost_its_port()
    finally:
        process.stop()


def test_a_service_that_lost_its_preferred_port_starts_again_on_a_free_one(
        tmp_path: Path, another_stacks_service: int) -> None:
    stack = Stack(tmp_path, preferred_ports=True)
    process = _service(tmp_path, another_stacks_service).start(wait=False)
    try:
        stack.wait_ready_on_own_port(process)
        assert process.port != another_stacks_service
        assert process.env["TOWNFLOW_HTTP_PORT"] == str(process.port)
        assert process.pid is not None and holds_port(process.pid, process.port)
    finally:
        process.stop()


def test_without_preferred_ports_a_lost_port_is_an_error(tmp_path: Path, another_stacks_service: int) -> None:
    stack = Stack(tmp_path, preferred_ports=False)
    process = _service(tmp_path, another_stacks_service).start(wait=False)
    try:
        with pytest.raises(RuntimeError, match="exited"):
            stack.wait_ready_on_own_port(process)
    finally:
        process.stop()


def test_a_service_on_its_own_port_is_ready(tmp_path: Path) -> None:
    process = _service(tmp_path, free_port()).start(wait=False)
    try:
        process.wait_ready(timeout=20)
        assert process.pid is not None and holds_port(process.pid, process.port)
        assert not holds_port(process.pid, free_port())
    finally:
        process.stop()


def test_processes_picking_ports_side_by_side_never_get_the_same_one() -> None:
    """Two processes (make test's lanes) each pick 150 ports and bind none of them yet, as servers
    still starting have not: 300 random picks of ~22,000 ports would repeat one most times (the
    birthday bound: 86 %), so without the ledger of ports handed out this fails."""
    pick = "from devstack.processes import free_port; print(*(free_port() for _ in range(150)))"
    lanes = [subprocess.Popen([sys.executable, "-c", pick], stdout=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(2)]
    picked = [int(port) for lane in lanes for port in lane.communicate(timeout=60)[0].split()]
    assert len(picked) == 300 and len(set(picked)) == 300
