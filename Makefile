# Townflow: `make up` runs the whole system, `make test` runs every test (lint, types, then the unit,
# database and stack tiers). Both install what is missing first (a virtualenv, the Python packages,
# Kafka's jars), on a fresh machine too.
PYTHON ?= python3
# Bytecode is written (into the clone's __pycache__ folders, which git ignores) even where the shell
# says not to (PYTHONDONTWRITEBYTECODE): `make test` starts a hundred Python processes from the same
# sources (every replica of every stack, the previous release's too), and each compiled them all
# again: 0.28 s of CPU per service start (1.28 s instead of 1.00, measured), and pytest rewrote
# every test module's asserts in every lane.
unexport PYTHONDONTWRITEBYTECODE
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PACKAGES := shared services/intake services/dispatch services/enforcement services/appraisal services/console services/notify
PYPROJECTS := $(foreach p,$(PACKAGES),$(p)/pyproject.toml)

.PHONY: install up test test-unit test-db test-stack stack-lane-shared stack-lane-own stack-lane-third lint typecheck unit kafka-jars keycloak prometheus asyncapi-parser axe-core chromium fault-tools postgis contracts bench bench-scale bench-rehearsal chaos upgrade-test fuzz screenshots clean

# The packages go in with uv (from PyPI, pinned here), not pip: a fresh clone's install took 48 s
# of two cores with pip (its own upgrade, resolving, compiling every package's bytecode), 11 s with
# uv from its cache (~/.cache/uv) — time that came before every tier of `make test` could start.
# Bytecode is compiled as each module is first imported (see PYTHONDONTWRITEBYTECODE above).
UV_VERSION := 0.13.9
UV := $(PY) -m uv pip install -q --python $(PY)
$(STAMP): requirements-dev.txt $(PYPROJECTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m uv --version 2>/dev/null | grep -q ' $(UV_VERSION) ' || $(PY) -m pip install -q uv==$(UV_VERSION)
	$(UV) -r requirements-dev.txt $(foreach p,$(PACKAGES),-e ./$(p))
	touch $(STAMP)

# What the stack's tests need besides the virtualenv (not npm's AsyncAPI parser: the unit tier's),
# and what only its browser lane needs (npm took 11 s for axe-core in a fresh clone, before every lane).
STACK_TOOLS := kafka-jars seaweedfs prometheus fault-tools postgis
BROWSER_TOOLS := keycloak axe-core chromium
install: $(STAMP) $(STACK_TOOLS) $(BROWSER_TOOLS) asyncapi-parser

# Debian's packages (prometheus, chromium, postgis, fault-tools) are installed where missing by
# apt-get, which takes dpkg's lock: `make test` checks the tools side by side, so each apt-get waits
# its turn on one lock instead of failing on dpkg's.
APT_GET := flock /tmp/townflow-apt.lock apt-get

# SeaweedFS, the S3-compatible server of `make up` and the stack tests (photos, docs/attachments.md):
# built once from the Go module proxy into ~/.cache/townflow, its source checked against the module
# hash pinned in devstack/s3.py (minutes on two cores the first time). Needs Go 1.26 or newer.
seaweedfs: $(STAMP)
	$(PY) -c "from devstack.s3 import weed_binary; print('seaweedfs:', weed_binary())"

# Prometheus and promtool from Debian's packages: `make up` runs Prometheus, `make test` checks
# the alert rules with promtool. Installed when missing and we may (root with apt-get).
prometheus:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends prometheus \
	  >/dev/null; } || echo "prometheus not installed (apt-get install prometheus): its checks are skipped"

# The AsyncAPI initiative's parser, from npm into shared/tests/asyncapi/node_modules at the versions of
# its package-lock.json: `make test` validates docs/asyncapi/*.json with it. Needs node and npm.
ASYNCAPI_PARSER := shared/tests/asyncapi/node_modules/.package-lock.json
asyncapi-parser: $(ASYNCAPI_PARSER)
$(ASYNCAPI_PARSER): shared/tests/asyncapi/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefer-offline --prefix shared/tests/asyncapi --no-audit --no-fund --ignore-scripts --loglevel=error; \
	  else echo "npm not installed (apt-get install nodejs npm): the AsyncAPI validation is skipped"; fi

# Deque's axe-core, from npm into tests/browser/axe/node_modules at the version of its package-lock.json:
# the console's browser tests inject it into every page they visit (no serious or critical violation).
AXE_CORE := tests/browser/axe/node_modules/.package-lock.json
axe-core: $(AXE_CORE)
$(AXE_CORE): tests/browser/axe/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefer-offline --prefix tests/browser/axe --no-audit --no-fund --ignore-scripts --loglevel=error; \
	  else echo "npm not installed (apt-get install nodejs npm): the console's browser tests fail"; fi

# Debian's Chromium, its headless shell (the browser without its windowing layer, which Playwright
# itself uses for headless runs: half the CPU of `chromium --headless` for the same browser tests,
# 73 s against 39 s, measured twice), and CJK fonts: the console's browser tests (Playwright drives
# /usr/bin/chromium-headless-shell; never `playwright install`, which downloads a browser from
# outside) and `make screenshots`. Installed when missing and we may (root with apt-get).
chromium:
	@{ test -x /usr/bin/chromium-headless-shell && test -d /usr/share/fonts/opentype/noto; } || { [ "$$(id -u)" = 0 ] && \
	  command -v apt-get >/dev/null && $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq \
	  --no-install-recommends chromium-headless-shell fonts-noto-cjk >/dev/null; } || \
	  echo "chromium not installed (apt-get install chromium-headless-shell fonts-noto-cjk): the console's browser tests fail"

# PostGIS from Debian's packages, for the PostgreSQL 15 that devstack runs: intake's matters have a
# position (issue #30, docs/place.md) and its migration 014 creates the extension. Installed when
# missing and we may (root with apt-get).
postgis:
	@test -e /usr/share/postgresql/15/extension/postgis.control || { [ "$$(id -u)" = 0 ] && \
	  command -v apt-get >/dev/null && $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq \
	  --no-install-recommends postgresql-15-postgis-3 >/dev/null; } || \
	  echo "postgis not installed (apt-get install postgresql-15-postgis-3): intake's migrations fail"

# Debian's libfaketime (one replica's own clock runs ahead: the clock-skew fault of `make chaos` and
# of test_resilience) and nftables (a replica cut off from PostgreSQL or Kafka: `make chaos`).
# Installed when missing and we may (root with apt-get).
fault-tools:
	@{ test -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 && command -v nft >/dev/null; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && $(APT_GET) update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends faketime nftables >/dev/null; } || \
	  echo "faketime/nftables not installed (apt-get install faketime nftables): the clock-skew and partition faults fail"

kafka-jars: $(STAMP)
	$(PY) -c "from devstack.kafka import kafka_jars; print('kafka jars:', kafka_jars())"

# Keycloak, the county's OIDC provider of the console's sign-in test and of `make up OIDC=1`: its
# distribution from Maven Central (SHA-1 checked) into the cache once, built there for loopback, and
# started once for its class archive (a faster start). It runs on a JDK of Java 21 or newer
# (JAVA_HOME, or the newest under /usr/lib/jvm; Debian's 17 is too old).
keycloak: $(STAMP)
	@$(PY) -c "from devstack.keycloak import install; print('keycloak:', install())" || echo "Keycloak not \
	  installed (see above): the console's OIDC sign-in test (tests/browser/test_console_oidc.py) and make up OIDC=1 fail"

# REPLICAS=2 runs two replicas of every service (REPLICAS=2,dispatch=3 per service); env TOWNFLOW_REPLICAS too.
# OIDC=1: staff sign in at a local Keycloak (docs/security-oidc.md), without the demo scenario.
REPLICAS ?=
up: install
	$(PY) -m devstack up $(if $(REPLICAS),--replicas $(REPLICAS)) $(if $(TOWN_DIR),--town-dir $(TOWN_DIR)) $(if $(OIDC),--oidc)

lint: $(STAMP)
	$(VENV)/bin/ruff check shared services devstack tests bench docs/subscriber conftest.py

# The product's packages (pyproject.toml's files), then the dev stack and the benchmarks (which the
# tests run: the chaos harness, bench-scale's smoke run) in a run of their own: in one run with the
# services' source trees mypy reports the services' submodules missing where bench imports them
# (`dispatch.rules`, ...); apart, both runs pass.
typecheck: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy devstack bench

# The tests in three tiers (the root conftest.py marks each test with its tier):
# unit: rules and command handlers, no I/O (a network connection fails the test), in seconds;
test-unit: $(STAMP) asyncapi-parser prometheus
	$(PY) -m pytest -q shared/tests services

unit: test-unit

# database: tests/database/ on one PostgreSQL of the session, a fresh database per test, no Kafka;
# the one that loads a county-year of tasks (half a minute) runs in the lane of the browser.
DB_AT_SCALE := tests/database/test_task_lists.py::test_a_county_year_every_search_and_filter_on_an_index_within_budget
test-db: $(STAMP) postgis
	$(PY) -m pytest -q -p no:cacheprovider tests/database --deselect $(DB_AT_SCALE)

# stack: tests/ on Kafka, PostgreSQL and the services (and the console in a browser). The bench's
# plotting package too: the bench-scale smoke check in this tier draws its plot.
# In three lanes at once: the modules that start stacks of their own (faults, fuzzing), the browser
# and the rolling upgrade, and the rest, which share the session's stacks. One lane alone waits more
# than it computes (0.56 of a core busy, measured); the three together keep about 1.6 of two cores
# busy, so they overlap their waits, not their work. STACK_LANES=1 runs them one after the other.
STACK_LANES ?= 3
OWN_STACKS := tests/test_resilience.py tests/test_fuzz.py tests/test_database_incidents.py tests/test_bench_scale.py
# The console in Chromium (Keycloak for its OIDC sign-in too) and the rolling upgrade: a lane of their
# own (their stacks are their own), with the county-year plan check (PostgreSQL alone): the faults'
# lane, with the bench-scale smoke run, ended last (10 min 37 s against this one's 9 min 3 s; with the
# check here, 10 min 6 s against 9 min 45 s).
THIRD_LANE := tests/browser tests/test_upgrade.py
# Each lane ends with its slowest tests (setup, call and teardown apart): where a lane's time goes.
SLOWEST := --durations=8 --durations-min=5
test-stack: $(STAMP) $(STACK_TOOLS)
	$(UV) -r bench/requirements.txt
	$(MAKE) --no-print-directory -j$(STACK_LANES) --output-sync=target stack-lane-shared stack-lane-own stack-lane-third

stack-lane-shared:
	$(PY) -m pytest -q $(SLOWEST) tests --ignore=tests/database $(addprefix --ignore=,$(OWN_STACKS) $(THIRD_LANE))

stack-lane-own:
	$(PY) -m pytest -q $(SLOWEST) -p no:cacheprovider $(OWN_STACKS)

stack-lane-third: $(BROWSER_TOOLS)
	$(PY) -m pytest -q $(SLOWEST) -p no:cacheprovider $(THIRD_LANE) $(DB_AT_SCALE)

# Everything at once: lint, types, the unit and database tiers beside the stack's three lanes. The
# lanes leave 15-20 % of the two cores idle while they wait on brokers and browsers, and the fast
# tiers (mypy's cold run in a fresh clone the longest, about a minute) fit in it, where one after the
# other they added their whole time to the run. A failure anywhere fails the run once the jobs
# running end; `make test-unit` alone answers in seconds. The tools past the virtualenv are checked
# (installed where missing) in the same jobs, each before the tier that needs it, so lint, types and
# the fast tiers start while npm installs the AsyncAPI parser and the stack's tools are looked for
# (in a fresh clone, 20-25 s that came before everything).
test: $(STAMP)
	$(MAKE) --no-print-directory -j5 --output-sync=target lint typecheck test-unit test-db test-stack

# The benchmark (minutes): figures and a plot under bench/results/. BENCH_ARGS=--matters 2000 for a short run.
bench: install
	$(UV) -r bench/requirements.txt
	$(PY) -m bench $(BENCH_ARGS)

# What grows with the data (hours at full size): a county-year of 60 towns × 13,000 matters, every
# read endpoint timed empty and loaded, /healthz under the heaviest reads, rebuild vs a bare consumer.
# SCALE_ARGS="--towns 10 --matters-per-town 2000" for a run of about 20 minutes.
bench-scale: install
	$(UV) -r bench/requirements.txt
	$(PY) -m bench.scale $(SCALE_ARGS)

# The reform rehearsal of a full county-month (60 towns, 65,000 matters of bench-scale's history in
# dispatch's database), real layout and a merged-module one, timed (issue #32: <= 60 s; a town-month
# <= 3 s); a few minutes. REHEARSAL_ARGS="--towns 2 --matters 2166 --twin-seeds 5" for the twin alone.
bench-rehearsal: install
	$(PY) -m bench.scale.rehearsal $(REHEARSAL_ARGS)

# Faults under load on two replicas of every service: kill -9 of single replicas, a database made
# read-only (a failover) then PostgreSQL stopped, the broker stopped, poison messages, redelivery,
# each service's relay holder paused 45 s, a replica cut off from PostgreSQL and one from Kafka,
# one dispatch replica's clock 5 minutes ahead; notify's replicas killed, its group rewound, its
# receivers down then back (every message once, none lost). CHAOS_ARGS="--matters 300 --incident-seconds 5"
# for a short run; "--faults pause,partition,skew" for only those (docs/benchmarks.md).
chaos: install
	$(PY) -m bench.chaos $(CHAOS_ARGS)

# A rolling upgrade under load from the previous release (CHANGELOG.md's newest, run from its own commit)
# to this tree, one replica at a time, and back. UPGRADE_ARGS="--from v1.0.0 --matters 100" for another run.
upgrade-test: install
	$(PY) -m bench.upgrade $(UPGRADE_ARGS)

# Property-based fuzzing of every HTTP API from its OpenAPI document: no 5xx.
fuzz: install
	$(PY) -m bench.fuzz $(FUZZ_ARGS)

# Every page of the console on the demo's data, as PNGs in docs/console/ (the README shows them).
screenshots: install
	$(PY) -m devstack.screenshots

contracts: $(STAMP)
	$(PY) -m devstack.contracts

clean:
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
