"""The stack tier: Kafka and PostgreSQL started once per session, the four services as child
processes with the test clock enabled. A module that injects faults gets a stack of its own, with
replicas, from `replicated_stack`. Each test leaves the test clocks where it found them (the
`_clocks_as_found` fixtures). Tests that need PostgreSQL alone belong in tests/database/, whose
own conftest starts nothing else."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import httpx
import pytest

from devstack.s3 import SeaweedFS
from devstack.stack import Stack
from devstack.traces import OtlpReceiver
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR

T = TypeVar("T")
# Every broker a stack test starts (its own and the bench's it runs) compiles with C1 alone: about half
# the broker's CPU on this 2-core machine, where the three lanes of `make test` are short of CPU.
os.environ.setdefault("TOWNFLOW_KAFKA_FAST_START", "1")
# And its topics have 4 partitions, not the 12 a county's broker is given: enough for the replicas a
# test runs to share each topic, and a stack starts 2 s sooner and its broker spends 3 s less CPU.
os.environ.setdefault("TOWNFLOW_KAFKA_PARTITIONS", "4")
_STACKS: list[Stack] = []  # the stacks running now, whose logs a failed test shows
# One TLS context for every test client. httpx builds (and loads certifi's bundle into) a new one for
# each client otherwise: 27 ms of CPU per client, and `eventually` makes a client every 0.1 s — about
# a quarter of a core spent on certificates while a test waits, for services spoken to in plain HTTP.
_TLS = ssl.create_default_context()


def http_client(**options: Any) -> httpx.AsyncClient:
    """An HTTP client for the stack's services (plain HTTP on loopback)."""
    return httpx.AsyncClient(verify=_TLS, **options)


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def _session_stack(otlp: OtlpReceiver | None, s3: SeaweedFS | None = None, evidence_lock_days: int | None = None,
                   **env: str) -> Iterator[Stack]:
    """A started stack with the test clock, tracing to the session's receiver (None: its services
    export no spans); stopped after. With `s3`, intake stores photos there, in a bucket of the
    stack's own (and enforcement its evidence in a second one under Object Lock, with
    `evidence_lock_days`)."""
    tracing = {"TOWNFLOW_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"} if otlp else {}
    s = Stack.in_temp_dir(test_clock=True, kafka_heap="384m", extra_env={**tracing, **env})
    if s3 is not None:
        s.use_s3(s3, evidence_lock_days)
    _STACKS.append(s)
    try:
        s.start_infra()
        s.start_services()
        yield s
    except BaseException:
        for process in s.all_replicas():
            if process.child is not None:
                print(f"--- {process.label} log ---\n{process.child.tail(60)}")
        raise
    finally:
        s.stop()
        _STACKS.remove(s)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedFS]:
    """The session's one S3 server (SeaweedFS, issue #29): started once, a bucket per stack on it."""
    server = SeaweedFS(Path(tempfile.mkdtemp(prefix="townflow-s3-")))
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(otlp: OtlpReceiver, s3_server: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's stack. Its evidence is in a bucket of its own under Object Lock (a day's
    retention: tests/test_evidence.py); the demo county's (county_stack) in its one bucket: both
    ways a county may keep evidence run. Its town is a copy of the demo town's folder
    (`town_dir_of`), so a module may add a file of the town that only a service it starts reads
    (tests/test_notify.py: notify.yaml, and notify)."""
    town = tmp_path_factory.mktemp("town")
    shutil.copytree(DEMO_TOWN_DIR, town, dirs_exist_ok=True)
    yield from _session_stack(otlp, s3_server, evidence_lock_days=1, TOWNFLOW_TOWN_DIR=str(town))


def town_dir_of(stack: Stack) -> Path:
    """The folder of the stack's town (or county) files, as its services read them."""
    return Path(stack.extra_env.get("TOWNFLOW_TOWN_DIR", DEMO_TOWN_DIR))


def _reads_spans_of(fixture: str, session: pytest.Session) -> bool:
    """Whether a test of the session reads the spans (asks for `otlp`) of the stack `fixture`."""
    return any({"otlp", fixture} <= set(getattr(item, "fixturenames", ())) for item in session.items)


@pytest.fixture(scope="session")
def county_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The demo county (禾川县: 青禾镇 321003104, 白鹭镇 321003107, 石桥镇 321003112) on a stack of
    its own, started once for the session when a test asks for it (SPEC §8). Its services export
    spans only when a test of the session reads them (the console's trace, in tests/browser): in
    the lane of the shared stacks none does, and exporting costs a fifth more of the services' CPU.
    It stores photos on the session's S3 server (issue #29: the access matrix reads and takes them)."""
    otlp = request.getfixturevalue("otlp") if _reads_spans_of("county_stack", request.session) else None
    yield from _session_stack(otlp, request.getfixturevalue("s3_server"), TOWNFLOW_TOWN_DIR=str(DEMO_COUNTY_DIR))


QINGHE, BAILU, SHIQIAO = "321003104", "321003107", "321003112"


class StackFactory(Protocol):
    def __call__(self, replicas: int | Mapping[str, int] = 2, **options: Any) -> Stack: ...


@pytest.fixture(scope="module")
def replicated_stack() -> Iterator[StackFactory]:
    """A factory of started stacks with replicas, each the module's own (stopped after the module):
    `replicated_stack()` runs 2 replicas of every service, `replicated_stack({"dispatch": 3})` three
    of dispatch; other options go to `Stack` (e.g. `extra_env`). Use it from a module-scoped fixture
    when a test injects faults that the session's stack must not see. Its services export no spans
    (no test of these reads them; exporting costs a fifth more of the services' CPU, measured): pass
    `extra_env={"TOWNFLOW_OTLP_ENDPOINT": otlp.endpoint}` to a stack whose test does."""
    made: list[Stack] = []

    def make(replicas: int | Mapping[str, int] = 2, **options: Any) -> Stack:
        extra_env = options.pop("extra_env", {})
        s = Stack.in_temp_dir(replicas=replicas, **{"test_clock": True, "kafka_heap": "384m", **options},
                              extra_env=extra_env)
        made.append(s)
        _STACKS.append(s)
        s.start_infra()
        s.start_services()
        return s

    yield make
    for s in made:
        s.stop()
        _STACKS.remove(s)


@pytest.fixture(scope="session")
def bootstrap(stack: Stack) -> str:
    assert stack.kafka is not None
    return stack.kafka.bootstrap


CLOCK = "/v1/admin/clock"


@dataclass(frozen=True)
class _Clock:
    """Where a service's test clock stands: frozen at `frozen_at`, or the system clock (None);
    `api` and `as_` moved it, so they can move it back."""

    api: Api
    as_: tuple[str, ...]
    frozen_at: str | None


_CLOCKS: dict[tuple[int, str], _Clock] = {}  # (the stack's id, the service) → its clock as last moved


async def _restore_clocks(before: dict[tuple[int, str], str | None]) -> None:
    """Every clock moved since `before` (through Api.call) back where it stood: a test leaves no
    clock moved for the next one, whichever runs next."""
    for key, clock in list(_CLOCKS.items()):
        wanted = before.get(key)
        if clock.frozen_at == wanted:
            continue
        if not any(s is clock.api.stack for s in _STACKS):  # stopped with its module
            del _CLOCKS[key]
            continue
        body: dict[str, Any] = {"release": True} if wanted is None else {"now": wanted}
        try:
            response = await clock.api.call("POST", CLOCK, as_=clock.as_, json=body)
        except httpx.ConnectError:  # the process that held the clock is gone, and took it with it:
            del _CLOCKS[key]        # its replacement starts on the system clock
            continue
        assert response.status_code == 200, response.text


def _clocks_now() -> dict[tuple[int, str], str | None]:
    return {key: clock.frozen_at for key, clock in _CLOCKS.items()}


@pytest.fixture(autouse=True)
async def _clocks_as_found() -> AsyncIterator[None]:
    """A test that moves the test clocks (set_clocks, advance_clocks) leaves them as it found them."""
    before = _clocks_now()
    yield
    await _restore_clocks(before)


@pytest.fixture(autouse=True, scope="module")
async def _clocks_as_found_by_the_module() -> AsyncIterator[None]:
    """The same for a module-scoped fixture that moves them for all the module's tests."""
    before = _clocks_now()
    yield
    await _restore_clocks(before)


class Api:
    """HTTP calls to one service with a token for a staff id and roles."""

    def __init__(self, stack: Stack, service: str, town: str | None = None) -> None:
        self.stack = stack
        self.service = service
        self.town = town  # the `town` claim of its tokens (a county's town staff); None: none

    @property
    def url(self) -> str:
        return self.stack.services[self.service].url

    def token(self, sub: str, *roles: str) -> str:
        return self.stack.token(self.service, sub, roles, town=self.town)

    def of_town(self, town: str | None) -> Api:
        """The same service, called as the staff of `town` (None: county roles)."""
        return Api(self.stack, self.service, town)

    async def call(self, method: str, path: str, *, as_: tuple[str, ...] | None = None,
                   **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.token(as_[0], *as_[1:])}"
        async with http_client(base_url=self.url, timeout=20) as http:
            response = await http.request(method, path, headers=headers, **kwargs)
        if (method.upper(), path) == ("POST", CLOCK) and as_ is not None and response.status_code == 200:
            body = kwargs.get("json") or {}
            _CLOCKS[(id(self.stack), self.service)] = _Clock(self, as_, None if body.get("release") else
                                                             response.json()["now"])
        return response


def _service_api(service: str) -> Any:
    """The session fixture named `service`: its HTTP API on the stack."""

    @pytest.fixture(scope="session", name=service)
    def api(stack: Stack) -> Api:
        return Api(stack, service)

    return api


intake, dispatch, enforcement, appraisal = (_service_api(s) for s in ("intake", "dispatch", "enforcement", "appraisal"))


@pytest.fixture(scope="session")
async def databases(stack: Stack) -> AsyncIterator[dict[str, asyncpg.Pool]]:
    assert stack.postgres is not None
    pools = {name: await asyncpg.create_pool(stack.postgres.dsn(name), min_size=1, max_size=3)
             for name in stack.services}
    yield pools
    for pool in pools.values():
        await pool.close()


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0,
                     what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; the value is returned. The polls back off
    from 50 ms to 400 ms: most waits end within a second, and a poll is a request a service answers
    (~9 ms of CPU, measured), which a hundred tests polling every 0.1 s through a long wait took
    from the two cores the stack lanes share."""
    deadline, pause = time.monotonic() + timeout, 0.05
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.4)


CLERK = ("s010", "clerk")
COMMAND = ("s030", "command_centre")
ADMIN = ("s000", "admin")


def filing(**overrides: Any) -> dict[str, Any]:
    """A valid filing; each has its own citizen, so the repeat-filing rule only applies on purpose."""
    phone = f"138{uuid.uuid4().int % 10**8:08d}"
    body: dict[str, Any] = {
        "channel": "window", "item_code": "S001", "description": "为新生儿办理户口登记",
        "village": "V01", "location": "青禾村五组", "citizen": {"name": "测试群众", "phone": phone},
    }
    body.update(overrides)
    return body


async def set_clocks(stack: Stack, now: str, as_: tuple[str, ...] = ADMIN) -> None:
    """Move every service's test clock to the same moment (RFC 3339); a county's stack needs a county
    role (`as_=("c001", "county_admin")`), whose token names no town."""
    for name in stack.services:
        response = await Api(stack, name).call("POST", CLOCK, as_=as_, json={"now": now})
        assert response.status_code == 200, response.text


async def advance_clocks(stack: Stack, duration: str) -> None:
    for name in stack.services:
        response = await Api(stack, name).call("POST", CLOCK, as_=ADMIN,
                                               json={"advance": duration})
        assert response.status_code == 200, response.text


async def file_matter(intake: Api, **overrides: Any) -> dict[str, Any]:
    response = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def task_of(dispatch: Api, request_id: str, status: str | None = None) -> dict[str, Any]:
    """The newest task of a matter, once dispatch has created it (and it has `status`)."""
    async def find() -> dict[str, Any] | None:
        response = await dispatch.call("GET", "/v1/tasks", as_=COMMAND, params={"request_id": request_id})
        if response.status_code != 200:  # a test of an outage polls through it (503): waited out
            return None
        tasks = response.json()
        if tasks and (status is None or tasks[0]["status"] == status):
            return dict(tasks[0])
        return None

    return await eventually(find, what=f"a task for {request_id}")


async def status_of(intake: Api, ticket: dict[str, Any], status: str) -> dict[str, Any]:
    """The citizen's view of a matter, once intake shows `status`."""
    async def find() -> dict[str, Any] | None:
        response = await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}",
                                     params={"code": ticket["access_code"]})
        if response.status_code != 200:  # an outage's 503, waited out
            return None
        view = response.json()
        return dict(view) if view.get("status") == status else None

    return await eventually(find, what=f"intake to show {ticket['ticket_no']} as {status}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the last log lines of every replica of the stacks running: the evidence
    is gone after the run."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for s in _STACKS:
            for process in s.all_replicas():
                if process.child is not None:
                    report.sections.append((f"{process.label} log", process.child.tail(40)))
