"""What can be checked of deploy/ without a cluster: manifests (against the Kubernetes schemas,
offline), dashboards, alert rules, compose."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

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
    # Leaves the Service's endpoints before SIGTERM closes its connections, within the grace period.
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and 0 < int(pause[1]) < docs["Deployment"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
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
    for rule in rules:
        page, anchor = rule["annotations"]["runbook"].split("#")
        assert f'id="{anchor}"' in (ROOT / page).read_text(), (page, anchor)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    for args in (["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}", doc)
            for path in sorted((DEPLOY / "k8s").glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


# The Kubernetes version the schemas come from: the newest kubernetes-validate bundles (pinned in
# requirements-dev.txt), strict, so a misspelt or misplaced field fails too.
K8S_VERSION = latest_version()


@pytest.mark.parametrize(("name", "manifest"), _manifests(), ids=[n for n, _ in _manifests()])
def test_every_manifest_is_valid_against_the_kubernetes_schemas(name: str, manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_a_manifest_with_a_misplaced_field_fails_validation() -> None:
    """The check above can fail: a probe's `path` one level too high, a replica count as text."""
    deployment = next(doc for _, doc in _manifests() if doc["kind"] == "Deployment")
    misplaced = copy.deepcopy(deployment)
    probe = misplaced["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["path"] = probe["httpGet"].pop("path")
    retyped = copy.deepcopy(deployment)
    retyped["spec"]["replicas"] = "two"
    for broken in (misplaced, retyped):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_kustomization_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(p.name for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")


def _our_services() -> set[str]:
    """Every service of the repo: a folder of services/ with its own image (the console included)."""
    return {p.parent.name for p in (ROOT / "services").glob("*/Dockerfile")}


def test_compose_runs_the_whole_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "postgres", *_our_services(), "prometheus", "grafana", "jaeger"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_builds_each_of_our_services_from_its_own_folder() -> None:
    """Cross-checked against services/*/: every service has a compose service of its name built
    from its Dockerfile, and nothing in compose builds from a folder that is not a service."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    built = {name: service["build"] for name, service in compose["services"].items() if "build" in service}
    assert set(built) == _our_services()
    for name, build in built.items():
        assert build["dockerfile"] == f"services/{name}/Dockerfile"
        assert (ROOT / build.get("context", ".") / build["dockerfile"]).is_file()


def test_compose_references_resolve() -> None:
    """What `docker compose config` would refuse, checked without Docker: a service without an
    image, a dependency on a service that is not there, a mounted file that does not exist, a
    service's database that deploy/postgres does not create."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    created = set(re.findall(r"CREATE DATABASE (\w+)", (DEPLOY / "postgres" / "init-databases.sql").read_text()))
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert set(service.get("depends_on", {})) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
        url = service.get("environment", {}).get("TOWNFLOW_DATABASE_URL")
        if url:
            assert url.rsplit("/", 1)[1] in created, f"{name}'s database is not created by init-databases.sql"
