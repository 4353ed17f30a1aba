"""Child processes that die with their parent, and small waiting helpers."""

from __future__ import annotations

import ctypes
import fcntl
import os
import pwd
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


# Listening ports are chosen below the kernel's range for outgoing connections: a port the kernel
# hands out (bind to 0) comes from that range, and a server that binds it seconds later (Keycloak
# takes 15 s) can find it taken as the source port of some client's connection (seen in `make test`).
_LISTEN_PORTS = range(10_000, 32_768)


def _outgoing_ports() -> range:
    try:
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return range(32_768, 61_000)
    return range(low, high + 1)


# Ports handed out in the last minute, by any process of this machine (make test's lanes pick
# side by side): a port free when picked is bound only when its server has started, seconds later,
# and two lanes picking the same one in between made one server fail to bind (seen in make test).
_HANDED_OUT = Path(tempfile.gettempdir()) / f"townflow-ports-handed-out-{os.getuid()}"  # a user's own: /tmp is shared
_HELD_SECONDS = 60.0


def free_port() -> int:
    """A port free to listen on now, outside the range of outgoing connections' ports, and not
    handed out to another server of this machine that may not have bound it yet."""
    with open(_HANDED_OUT, "a+") as ledger:
        fcntl.flock(ledger, fcntl.LOCK_EX)  # released as the file closes
        ledger.seek(0)
        now = time.time()
        recent = {int(port): float(at) for port, at in
                  (line.split() for line in ledger.read().splitlines() if line.count(" ") == 1)
                  if now - float(at) < _HELD_SECONDS}
        port = _bindable_port(set(recent))
        recent[port] = now
        ledger.truncate(0)  # "a+" writes at the end, which is now the start
        ledger.write("".join(f"{p} {at}\n" for p, at in recent.items()))
        return port


def _bindable_port(taken: set[int]) -> int:
    outgoing, pick = _outgoing_ports(), random.SystemRandom()
    for _ in range(200):
        port = pick.choice(_LISTEN_PORTS)
        if port in outgoing or port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a machine whose outgoing range covers ours: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on a local TCP port (Linux's /proc/net/tcp and tcp6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def holds_port(pid: int, port: int) -> bool:
    """Whether the process `pid` (or a process it started) listens on `port`: the answer on a
    port is our child's, not another stack's that took the port first."""
    inodes = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    pending, seen = [pid], set()
    while pending and inodes:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            for fd in Path(f"/proc/{current}/fd").iterdir():
                try:
                    if os.readlink(fd) in inodes:
                        return True
                except OSError:
                    continue
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return False


def wait_for_port(child: Child | None, port: int, timeout: float, what: str) -> None:
    """Until something listens on `port`; at once an error if `child`, which should, has died."""
    def listening() -> bool:
        assert child is not None
        child.check_alive()
        return port_open(port)

    wait_until(listening, timeout, what)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _child_setup(user: str | None, death_signal: int) -> Callable[[], None]:
    def setup() -> None:
        os.setpgrp()  # our own group: Ctrl-C in the terminal reaches only the parent
        if user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        # After setuid: a change of credentials clears the parent-death signal.
        _libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() == 1:  # parent already gone before prctl took effect
            os._exit(1)

    return setup


class Child:
    """One long-running child process with its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            preexec_fn=_child_setup(self.user, self.stop_signal),
        )
        out.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.proc.returncode}; last log lines:\n{self.tail()}"
            )
