"""devstack's Keycloak without starting it: the realm made from the demo county (one user per console
account, with the staff id, town and roles Townflow reads), its console client (PKCE, token
exchange, the console's redirect addresses), the services' audiences in an optional scope, and the
JDK it picks. The realm at work: tests/browser/test_console_oidc.py."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from devstack.demo_accounts import DEMO_PASSWORD
from devstack.keycloak import (
    CONSOLE_CLIENT,
    SERVICES_SCOPE,
    county_realm,
    county_users,
    java_home,
    services_scope,
)
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

COUNTY = load_county(DEMO_COUNTY_DIR)
REALM = county_realm(COUNTY, "http://127.0.0.1:8000", "s3cret", DEMO_PASSWORD)


def test_every_console_account_is_a_user_with_its_staff_id_town_and_roles() -> None:
    accounts = sum(len(t.accounts) for t in COUNTY.towns.values()) + len(COUNTY.info.accounts if COUNTY.info else [])
    users = {u["username"]: u for u in REALM["users"]}
    assert len(users) == accounts == len(county_users(COUNTY))
    clerk = users["qh-s010"]
    assert clerk["attributes"] == {"staff_id": ["s010"], "town": ["321003104"]}
    assert sorted(clerk["clientRoles"][CONSOLE_CLIENT]) == ["clerk", "staff"]
    assert users["c001"]["attributes"] == {"staff_id": ["c001"]}  # county staff: no town


def test_the_stored_password_is_the_demo_password() -> None:
    credential = REALM["users"][0]["credentials"][0]
    secret, data = json.loads(credential["secretData"]), json.loads(credential["credentialData"])
    salt = base64.b64decode(secret["salt"])
    again = hashlib.pbkdf2_hmac("sha512", DEMO_PASSWORD.encode(), salt, data["hashIterations"], dklen=64)
    assert (data["algorithm"], base64.b64encode(again).decode()) == ("pbkdf2-sha512", secret["value"])


def test_the_console_client_is_confidential_with_pkce_token_exchange_and_its_own_addresses() -> None:
    console = next(c for c in REALM["clients"] if c["clientId"] == CONSOLE_CLIENT)
    assert (console["publicClient"], console["secret"], console["directAccessGrantsEnabled"]) == (False, "s3cret", False)
    assert console["attributes"] == {"pkce.code.challenge.method": "S256", "standard.token.exchange.enabled": "true",
                                     "post.logout.redirect.uris": "http://127.0.0.1:8000/signin"}
    assert console["redirectUris"] == ["http://127.0.0.1:8000/signin/oidc/callback"]
    claims = {m["config"].get("claim.name") for m in console["protocolMappers"]}
    assert claims == {"staff_id", "town", "roles"}
    # No service's audience on the console's own tokens: only the optional scope adds them.
    assert all(m["protocolMapper"] != "oidc-audience-mapper" for m in console["protocolMappers"])


def test_the_services_audiences_are_in_an_optional_scope_one_mapper_each() -> None:
    scope = services_scope()
    assert scope["name"] == SERVICES_SCOPE
    assert sorted(m["config"]["included.client.audience"] for m in scope["protocolMappers"]) == [
        "townflow-appraisal", "townflow-dispatch", "townflow-enforcement", "townflow-intake", "townflow-notify"]
    services = {c["clientId"] for c in REALM["clients"] if c.get("bearerOnly")}
    assert services == {m["config"]["included.client.audience"] for m in scope["protocolMappers"]}


def _jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").touch()
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_the_jdk_is_java_home_when_new_enough_else_none_older_than_21(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seventeen = _jdk(tmp_path, "java-17", "17.0.15")
    twenty_five = _jdk(tmp_path, "temurin-25", "25.0.1")
    monkeypatch.setenv("JAVA_HOME", str(seventeen))
    assert java_home(tmp_path) == twenty_five
    monkeypatch.setenv("JAVA_HOME", str(twenty_five))
    assert java_home(tmp_path / "nowhere") == twenty_five
    (twenty_five / "release").write_text('JAVA_VERSION="17"\n')
    with pytest.raises(RuntimeError, match="Java 21 or newer"):
        java_home(tmp_path)
