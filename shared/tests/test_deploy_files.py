"""What can be checked of deploy/ without a cluster: manifests, dashboards, alert rules, compose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = {"intake": 8001, "dispatch": 8002, "enforcement": 8003, "appraisal": 8004}
OUR_METRICS = re.compile(r"\b(townflow_[a-z_]+|faststream_[a-z_]+)")


@pytest.mark.parametrize(("service", "port"), SERVICES.items())
def test_each_service_has_a_deployment_a_service_a_configmap_and_probes(service: str, port: int) -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / f"{service}.yaml").read_text())}
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    assert docs["ConfigMap"]["data"]["TOWNFLOW_SERVICE_NAME"] == service  # = its consumer group
    assert docs["ConfigMap"]["data"]["TOWNFLOW_HTTP_PORT"] == str(port)
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert docs["Deployment"]["spec"]["replicas"] >= 2
    secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert "TOWNFLOW_DATABASE_URL" in secrets  # credentials never in the ConfigMap
    # Production tokens come from the county's OIDC issuer, each service its own audience; no
    # HS256 secret shared by the services (a leak of one would forge tokens for all).
    config = docs["ConfigMap"]["data"]
    assert config["TOWNFLOW_JWT_JWKS_URL"].startswith("https://") and config["TOWNFLOW_JWT_ISSUER"]
    assert config["TOWNFLOW_JWT_AUDIENCE"] == f"townflow-{service}"
    assert "TOWNFLOW_JWT_SECRET" not in secrets
    assert not any("PASSWORD" in k or "SECRET" in k or "DATABASE_URL" in k for k in docs["ConfigMap"]["data"])
    selector = docs["Service"]["spec"]["selector"]
    assert selector.items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()


def _exported_metric_names() -> set[str]:
    names = set()
    for path in (ROOT / "shared").rglob("*.py"):
        names |= set(re.findall(r'"(townflow_[a-z_]+)"', path.read_text()))
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r'"(townflow_[a-z_]+)"', path.read_text()))
    return names


def test_dashboards_are_valid_and_only_query_metrics_we_export() -> None:
    known = _exported_metric_names()
    dashboards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert {p.stem for p in dashboards} == {*SERVICES, "flow"}
    for path in dashboards:
        board = json.loads(path.read_text())
        assert board["uid"] and board["panels"]
        for panel in board["panels"]:
            for target in panel["targets"]:
                for name in OUR_METRICS.findall(target["expr"]):
                    base = re.sub(r"_(bucket|count|sum|total)$", "", name)
                    if name.startswith("townflow_"):
                        assert name in known or base in known or f"{base}_total" in known or base + "_seconds" in known, (path.name, name)


def test_alert_rules_have_runbooks_that_exist() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert {"TownflowConsumerLag", "TownflowDeadLetters", "TownflowOutboxStuck", "TownflowOverdueRedMatters",
            "TownflowHttpErrors"} <= names
    readme = (ROOT / "README.md").read_text()
    for rule in rules:
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f'id="{anchor}"' in readme, anchor


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    for args in (["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_whole_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"kafka", "postgres", *SERVICES, "prometheus", "grafana", "jaeger"} <= set(compose["services"])
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
