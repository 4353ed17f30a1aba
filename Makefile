# Townflow: `make up` runs the whole system, `make test` runs every test. Both install what is
# missing first (a virtualenv, the Python packages, Kafka's jars), on a fresh machine too.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PACKAGES := shared services/intake services/dispatch services/enforcement services/appraisal
PYPROJECTS := $(foreach p,$(PACKAGES),$(p)/pyproject.toml)

.PHONY: install up test lint typecheck unit kafka-jars prometheus contracts bench bench-scale chaos fuzz clean

$(STAMP): requirements-dev.txt $(PYPROJECTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt $(foreach p,$(PACKAGES),-e ./$(p))
	touch $(STAMP)

install: $(STAMP) kafka-jars prometheus

# Prometheus and promtool from Debian's packages: `make up` runs Prometheus, `make test` checks
# the alert rules with promtool. Installed when missing and we may (root with apt-get).
prometheus:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
	  >/dev/null; } || echo "prometheus not installed (apt-get install prometheus): its checks are skipped"

kafka-jars: $(STAMP)
	$(PY) -c "from devstack.kafka import kafka_jars; print('kafka jars:', kafka_jars())"

# REPLICAS=2 runs two replicas of every service (REPLICAS=2,dispatch=3 per service); env TOWNFLOW_REPLICAS too.
REPLICAS ?=
up: install
	$(PY) -m devstack up $(if $(REPLICAS),--replicas $(REPLICAS)) $(if $(TOWN_DIR),--town-dir $(TOWN_DIR))

lint: $(STAMP)
	$(VENV)/bin/ruff check shared services devstack tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q shared/tests services/*/tests

test: install lint typecheck
	$(PY) -m pytest

# The benchmark (minutes): figures and a plot under bench/results/. BENCH_ARGS=--matters 2000 for a short run.
bench: install
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) -m bench $(BENCH_ARGS)

# What grows with the data (hours at full size): a county-year of 60 towns × 13,000 matters, every
# read endpoint timed empty and loaded, /healthz under the heaviest reads, rebuild vs a bare consumer.
# SCALE_ARGS="--towns 10 --matters-per-town 2000" for a run of about 20 minutes.
bench-scale: install
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) -m bench.scale $(SCALE_ARGS)

# Faults under load on two replicas of every service: kill -9 of single replicas, a database made
# read-only (a failover) then PostgreSQL stopped, the broker stopped, poison messages, redelivery.
# CHAOS_ARGS="--matters 300 --incident-seconds 5" for a short run.
chaos: install
	$(PY) -m bench.chaos $(CHAOS_ARGS)

# Property-based fuzzing of every HTTP API from its OpenAPI document: no 5xx.
fuzz: install
	$(PY) -m bench.fuzz $(FUZZ_ARGS)

contracts: $(STAMP)
	$(PY) -m devstack.contracts

clean:
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
