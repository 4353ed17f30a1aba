"""deploy/k8s/console.yaml can switch a county to its OIDC provider and publish the console's
audit trail: every TOWNFLOW_CONSOLE_OIDC_* setting is there (the issuer empty: local accounts until
the county sets it), secrets from the Secret only, and the Kafka the outbox relay needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from console.settings import ConsoleSettings

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "console.yaml"
SECRETS = {"TOWNFLOW_CONSOLE_OIDC_CLIENT_SECRET", "TOWNFLOW_CONSOLE_OIDC_STATE_KEY", "TOWNFLOW_DATABASE_URL",
           "TOWNFLOW_KAFKA_PASSWORD"}


def test_the_console_manifest_names_every_oidc_setting_and_the_kafka_of_its_audit_topic() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
    config = docs["ConfigMap"]["data"]
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    from_secret = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    oidc = {f"TOWNFLOW_{name.upper()}" for name in ConsoleSettings.model_fields if name.startswith("console_oidc_")}
    assert len(oidc) >= 9
    assert oidc - set(config) - from_secret == set(), "add them to deploy/k8s/console.yaml"
    assert SECRETS <= from_secret and not SECRETS & set(config)
    assert config["TOWNFLOW_CONSOLE_OIDC_ISSUER"] == ""  # a county fills it in; until then, local accounts
    assert config["TOWNFLOW_KAFKA_BOOTSTRAP"] and int(config["TOWNFLOW_AUDIT_RETENTION_DAYS"]) >= 180
