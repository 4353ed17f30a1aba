"""Local observability for `make up`: Prometheus from the machine's packages when present."""

from __future__ import annotations

import shutil

from .processes import Child, free_port, port_open, wait_until
from .stack import ServiceProcess, Stack


def prometheus_config(stack: Stack) -> str:
    """One job per service, one target per replica: group-wide figures sum over the targets."""
    def targets(processes: list[ServiceProcess]) -> str:
        return ", ".join(f"'127.0.0.1:{p.port}'" for p in processes)

    jobs = "\n".join(
        f"  - job_name: {name}\n    static_configs:\n      - targets: [{targets(processes)}]\n"
        f"        labels: {{service: {name}}}"
        for name, processes in stack.replicas.items())
    return f"global:\n  scrape_interval: 5s\nscrape_configs:\n{jobs}\n"


def start_observability(stack: Stack) -> list[str]:
    """Start what the machine has; return lines saying where to look."""
    lines: list[str] = []
    binary = shutil.which("prometheus")
    if binary is None:
        lines.append("prometheus  not installed (apt-get install prometheus) - each service's /metrics still answers")
        return lines
    folder = stack.workdir / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(prometheus_config(stack))
    port = 9090 if not port_open(9090) else free_port()
    child = Child("prometheus", [binary, f"--config.file={folder / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={folder / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                  log=stack.workdir / "logs" / "prometheus.log").start()
    wait_until(lambda: port_open(port), 30, "prometheus")
    stack.extra_children.append(child)
    lines.append(f"prometheus  http://127.0.0.1:{port}")
    return lines
