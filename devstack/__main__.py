"""`python -m devstack up` runs the whole system locally; `python -m devstack token` mints a JWT
for the running stack (e.g. `python -m devstack token s030 command_centre`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from .stack import REPO, Stack

STATE = REPO / ".stack" / "state.json"


def up(args: argparse.Namespace) -> int:
    from .processes import free_port, port_open
    from .traces import OtlpReceiver

    traces = OtlpReceiver(16686 if not port_open(16686) else free_port()).start()
    stack = Stack.in_temp_dir(preferred_ports=True, test_clock=args.test_clock,
                              extra_env={"TOWNFLOW_OTLP_ENDPOINT": traces.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "1000"})
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        print("starting Kafka (KRaft) and PostgreSQL ...", flush=True)
        stack.start_infra()
        print("starting intake, dispatch, enforcement, appraisal ...", flush=True)
        stack.start_services()
        stack.write_state(STATE)
        from .observe import start_observability

        observers = start_observability(stack)
        assert stack.kafka is not None and stack.postgres is not None
        print("\nTownflow is up:")
        print(f"  kafka       {stack.kafka.bootstrap}")
        print(f"  postgresql  127.0.0.1:{stack.postgres.port} (databases: {', '.join(stack.services)})")
        for name, process in stack.services.items():
            print(f"  {name:<11} {process.url}  (OpenAPI: {process.url}/docs, metrics: {process.url}/metrics)")
        for line in observers:
            print(f"  {line}")
        print(f"  traces      {traces.endpoint}/api/traces?service=intake  (one trace: {traces.endpoint}/api/traces/<trace id>)")
        print(f"  logs        {stack.workdir / 'logs'}")
        print(f"  tokens      {sys.executable} -m devstack token s030 command_centre")
        if not args.no_demo:
            from .demo import run_demo

            print("\nrunning the demo scenario ...", flush=True)
            run_demo(stack)
        print("\nPress Ctrl-C to stop everything.", flush=True)
        while not stopping.wait(1):
            for process in stack.services.values():
                if process.child is not None and not process.child.running:
                    print(f"{process.name} stopped unexpectedly:\n{process.child.tail()}")
                    return 1
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop
        print("\nstopping ...", flush=True)
        stack.stop()
        traces.stop()
        STATE.unlink(missing_ok=True)
    return 0


def token(args: argparse.Namespace) -> int:
    from townflow_shared.auth import issue_token

    if not STATE.exists():
        print("no running stack (start one with `make up`)", file=sys.stderr)
        return 1
    secret = json.loads(Path(STATE).read_text())["jwt_secret"]
    print(issue_token(secret, args.sub, args.roles or ["staff"], ttl_seconds=args.ttl))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="run Kafka, PostgreSQL and the four services until Ctrl-C")
    p_up.add_argument("--no-demo", action="store_true", help="start empty, without the demo scenario")
    p_up.add_argument("--test-clock", action="store_true", help="enable POST /v1/admin/clock")
    p_up.set_defaults(func=up)
    p_token = sub.add_parser("token", help="mint a bearer token for the running stack")
    p_token.add_argument("sub", help="staff id, e.g. s030")
    p_token.add_argument("roles", nargs="*", help="roles, e.g. command_centre clerk")
    p_token.add_argument("--ttl", type=int, default=8 * 3600)
    p_token.set_defaults(func=token)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
