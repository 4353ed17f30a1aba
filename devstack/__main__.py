"""`python -m devstack up` runs the whole system locally (`--replicas 2` runs two of each service);
`python -m devstack token` mints a JWT for the running stack (e.g. `python -m devstack token s030
command_centre`); `python -m devstack replica stop|kill|start <service> <index>` acts on one replica
of the running stack, as a rolling deployment or a crashed pod would."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from townflow_shared.settings import DEMO_COUNTY_DIR

from .keycloak import Keycloak, start_stack_on_keycloak
from .receivers import Receivers
from .s3 import SeaweedFS
from .stack import REPO, SERVICES, Stack

STATE = REPO / ".stack" / "state.json"
# `replica start` asks the `up` process to start a replica (it must be that process's child, so it
# dies with it); a request is a file here, answered by a file of the same name with `.done`.
REQUESTS = REPO / ".stack" / "requests"


def parse_replicas(text: str) -> int | dict[str, int]:
    """`2` (every service), or `2,dispatch=3` / `dispatch=3` (per service; unnamed ones get the bare number or 1)."""
    default, counts = 1, {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = part.rpartition("=")
        if not sep:
            default = int(number)
        elif name in SERVICES:
            counts[name] = int(number)
        else:
            raise argparse.ArgumentTypeError(f"unknown service {name!r} (one of {', '.join(SERVICES)})")
    return {name: counts.get(name, default) for name in SERVICES} if counts else default


def up(args: argparse.Namespace) -> int:
    from .processes import free_port, port_open
    from .traces import OtlpReceiver

    traces = OtlpReceiver(16686 if not port_open(16686) else free_port()).start()
    stack = Stack.in_temp_dir(preferred_ports=True, test_clock=args.test_clock, replicas=args.replicas,
                              extra_env={"TOWNFLOW_OTLP_ENDPOINT": traces.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "1000",
                                         "TOWNFLOW_TOWN_DIR": str(args.town_dir)})
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    keycloak: Keycloak | None = None
    receivers: Receivers | None = None
    # The S3 server of intake's photos (issue #29), beside the stack's folder (it outlives the
    # services, which stop first).
    s3 = SeaweedFS(Path(tempfile.mkdtemp(prefix="townflow-s3-")))
    try:
        print("starting SeaweedFS (S3) ...", flush=True)
        stack.use_s3(s3.start())
        # Notify's receivers first (devstack/receivers.py: robots and SMTP, nothing leaves the
        # machine), with the secret the demo county's notify.yaml names.
        secret = "SEC" + secrets.token_hex(16)
        stack.extra_env["QINGHE_COMMAND_ROBOT_SECRET"] = secret
        # The SMS gateway stand-in too: intake texts the citizens through it (docs/notify.md).
        receivers = Receivers(stack.workdir, dingtalk={"qinghe-command": secret}, wecom=["qinghe-staff"],
                              sms=("LTAI-townflow-demo", "SMS" + secrets.token_hex(16))).start()
        stack.use_receivers(receivers)
        if args.oidc:
            from .demo_accounts import DEMO_PASSWORD

            print("starting Keycloak, Kafka (KRaft), PostgreSQL, the services, notify and the console ...", flush=True)
            keycloak = Keycloak(stack.workdir / "keycloak")
            console = start_stack_on_keycloak(stack, keycloak, args.town_dir, DEMO_PASSWORD, [*SERVICES, "notify"])
        else:
            print("starting Kafka (KRaft) and PostgreSQL ...", flush=True)
            stack.start_infra()
            print("starting intake, dispatch, enforcement, appraisal, notify and the console ...", flush=True)
            stack.start_services([*SERVICES, "notify"])
            console = stack.start_console()
        stack.write_state(STATE)
        from .observe import start_observability

        observers = start_observability(stack)
        assert stack.kafka is not None and stack.postgres is not None
        print("\nTownflow is up:")
        print(f"  kafka       {stack.kafka.bootstrap}")
        print(f"  postgresql  127.0.0.1:{stack.postgres.port} (databases: {', '.join(stack.services)})")
        print(f"  s3          {s3.endpoint}  (SeaweedFS; bucket {stack.s3_bucket}, photos: docs/attachments.md)")
        for name, process in stack.services.items():
            print(f"  {name:<11} {process.url}  (OpenAPI: {process.url}/docs, metrics: {process.url}/metrics)")
            for more in stack.replicas[name][1:]:
                print(f"  {'':<11} {more.url}  (replica {more.index})")
        print(f"  {'console':<11} {console.url}  (sign in with the demo accounts below; metrics: {console.url}/metrics)")
        for line in observers:
            print(f"  {line}")
        if receivers is not None:
            print(f"  receivers   {receivers.url}/received  (what notify sent: robots, webhooks, e-mail; the citizens' SMS from intake; docs/notify.md)")
        print(f"  traces      {traces.endpoint}/api/traces?service=intake  (one trace: {traces.endpoint}/api/traces/<trace id>)")
        print(f"  logs        {stack.workdir / 'logs'}")
        print(f"  towns       {args.town_dir}")
        if keycloak is not None:
            print(f"  keycloak    {keycloak.issuer}  (admin console: {keycloak.url}/admin, admin / "
                  f"{keycloak.admin_password}; staff sign in there with the demo accounts below)")
        else:
            print(f"  tokens      {sys.executable} -m devstack token s007 command_centre --town 321003104"
                  "  (a town's staff; the county's: token c002 county_reader, token c001 county_admin)")
        # The demo scenario calls the services with the stand-in issuer's tokens, which a stack on
        # Keycloak does not accept.
        if not args.no_demo and keycloak is None:
            from .demo import run_demo

            print("\nrunning the demo scenario ...", flush=True)
            run_demo(stack)
        print_console(console.url, args.town_dir)
        print("\nPress Ctrl-C to stop everything.", flush=True)
        supervise(stack, stopping)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop
        print("\nstopping ...", flush=True)
        if keycloak is not None:
            keycloak.stop()
        stack.stop()
        if receivers is not None:
            receivers.stop()
        s3.stop()
        shutil.rmtree(s3.workdir, ignore_errors=True)
        traces.stop()
        STATE.unlink(missing_ok=True)
        shutil.rmtree(REQUESTS, ignore_errors=True)
    return 0


def print_console(url: str, town_dir: Path) -> None:
    from .demo_accounts import DEMO_PASSWORD, demo_account_lines

    print(f"\nThe staff console (镇务通工作台): {url}   citizens' status page: {url}/status")
    lines = demo_account_lines(town_dir)
    if lines:
        print(f"  demo accounts (password {DEMO_PASSWORD}; every staff member of 青禾镇 signs in as qh-<staff id>,"
              " 白鹭镇 bl-, 石桥镇 sq-):")
        for line in lines:
            print(f"    {line}")
    else:
        print(f"  no console accounts in {town_dir} (accounts.yaml per town, `accounts:` in county.yaml)")


def supervise(stack: Stack, stopping: threading.Event) -> None:
    """Until Ctrl-C: report each replica that stops (the rest go on) and answer `replica start`."""
    reported: set[int] = set()
    REQUESTS.mkdir(parents=True, exist_ok=True)
    while not stopping.wait(1):
        for process in stack.all_replicas():
            if process.child is not None and not process.running and id(process.child) not in reported:
                reported.add(id(process.child))
                code = process.child.proc.returncode if process.child.proc is not None else None
                print(f"{process.label} (pid {process.pid}) stopped with exit code {code}; the other replicas go on."
                      f" Start it again: {sys.executable} -m devstack replica start {process.name} {process.index}\n"
                      f"{process.child.tail(10)}", flush=True)
        for request in sorted(REQUESTS.glob("*.json")):
            answer = start_requested(stack, json.loads(request.read_text()))
            request.unlink()
            request.with_suffix(".done").write_text(json.dumps(answer))


def start_requested(stack: Stack, request: dict[str, object]) -> dict[str, object]:
    name, index = str(request["service"]), int(str(request["index"]))
    try:
        process = stack.start_replica(name, index, wait=False)
        process.wait_ready()
    except (LookupError, RuntimeError, TimeoutError) as exc:
        return {"ok": False, "error": str(exc)}
    stack.write_state(STATE)
    print(f"{process.label} started again: {process.url} (pid {process.pid})", flush=True)
    return {"ok": True, "url": process.url, "pid": process.pid}


def replica(args: argparse.Namespace) -> int:
    """Stop, kill or start one replica of the stack that `make up` runs, found in its state file."""
    if not STATE.exists():
        print("no running stack (start one with `make up`)", file=sys.stderr)
        return 1
    state = json.loads(STATE.read_text())
    replicas = state.get("replicas", {}).get(args.service, [])
    if not 0 <= args.index < len(replicas):
        print(f"{args.service} has replicas 0..{len(replicas) - 1}", file=sys.stderr)
        return 1
    entry = replicas[args.index]
    if args.action == "start":
        return request_start(args.service, args.index)
    pid = entry.get("pid")
    if not pid or not _is_replica(pid, args.service):
        print(f"{args.service}-{args.index} is not running", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGKILL if args.action == "kill" else signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _is_replica(pid, args.service) and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"{args.service}-{args.index} (pid {pid}) {'killed' if args.action == 'kill' else 'stopped'}")
    return 0


def _is_replica(pid: int, service: str) -> bool:
    """The pid is alive and still one of our service processes (not a recycled pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return status != "Z" and service.encode() in argv


def request_start(service: str, index: int, timeout: float = 90.0) -> int:
    REQUESTS.mkdir(parents=True, exist_ok=True)
    request = REQUESTS / f"{uuid.uuid4().hex}.json"
    request.with_suffix(".tmp").write_text(json.dumps({"service": service, "index": index}))
    request.with_suffix(".tmp").rename(request)  # the `up` loop never reads half a request
    done = request.with_suffix(".done")
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            print(f"the stack did not answer within {timeout:.0f}s (is `make up` still running?)", file=sys.stderr)
            return 1
        time.sleep(0.2)
    answer = json.loads(done.read_text())
    done.unlink()
    if not answer["ok"]:
        print(answer["error"], file=sys.stderr)
        return 1
    print(f"{service}-{index} started: {answer['url']} (pid {answer['pid']})")
    return 0


def token(args: argparse.Namespace) -> int:
    from townflow_shared.auth import issue_token

    from .issuer import audience_of
    from .stack import SERVICES

    if not STATE.exists():
        print("no running stack (start one with `make up`)", file=sys.stderr)
        return 1
    issuer = json.loads(Path(STATE).read_text())["issuer"]
    # Signed with the local issuer's key, as the county's OIDC issuer would sign it in production;
    # for one service (--service) or, for curl convenience, all of them.
    audience = audience_of(args.service) if args.service else [audience_of(s) for s in SERVICES]
    claims = {"town": args.town} if args.town else {}
    print(issue_token(issuer["signing_key"], args.sub, args.roles or ["staff"], ttl_seconds=args.ttl,
                      audience=audience, issuer=issuer["url"], algorithm="RS256", key_id=issuer["kid"], **claims))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="run Kafka, PostgreSQL and the four services until Ctrl-C")
    p_up.add_argument("--no-demo", action="store_true", help="start empty, without the demo scenario")
    p_up.add_argument("--test-clock", action="store_true", help="enable POST /v1/admin/clock")
    p_up.add_argument("--oidc", action="store_true",
                      help="staff sign in at a local Keycloak (the county's OIDC provider; no demo scenario)")
    p_up.add_argument("--replicas", type=parse_replicas, default=parse_replicas(os.environ.get("TOWNFLOW_REPLICAS", "1")),
                      help="replicas of every service (2), or per service (2,dispatch=3); env TOWNFLOW_REPLICAS")
    p_up.add_argument("--town-dir", type=Path, default=Path(os.environ.get("TOWNFLOW_TOWN_DIR", DEMO_COUNTY_DIR)),
                      help="a county's or one town's folder (default: the demo county 禾川县; env TOWNFLOW_TOWN_DIR)")
    p_up.set_defaults(func=up)
    p_replica = sub.add_parser("replica", help="stop, kill -9 or start one replica of the running stack")
    p_replica.add_argument("action", choices=["stop", "kill", "start"])
    p_replica.add_argument("service", choices=list(SERVICES))
    p_replica.add_argument("index", type=int, help="0 for the first replica")
    p_replica.set_defaults(func=replica)
    p_token = sub.add_parser("token", help="mint a bearer token for the running stack")
    p_token.add_argument("sub", help="staff id, e.g. s030")
    p_token.add_argument("roles", nargs="*", help="roles, e.g. command_centre clerk")
    p_token.add_argument("--ttl", type=int, default=8 * 3600)
    p_token.add_argument("--service", choices=["intake", "dispatch", "enforcement", "appraisal"],
                         help="the one service the token is for (default: all four)")
    p_token.add_argument("--town", help="the town claim of a town's staff in a county, e.g. 321003104 "
                                        "(none for county_admin / county_reader)")
    p_token.set_defaults(func=token)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
