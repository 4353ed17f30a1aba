"""Keycloak, the county's OIDC provider in local runs and tests: its distribution fetched from Maven
Central once, built once for a loopback server (in-memory database, no cluster), started on a free
port with a realm made from the county's staff (one user per console account, the demo password,
the staff id, town and roles as Townflow reads them).

The realm is what docs/security-oidc.md asks of a county's provider: a confidential console client
(authorization code with PKCE S256, standard token exchange), one client per service audience, and
the `staff_id`, `town` and `roles` claims in the ID and access tokens."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from townflow_shared.county import County, load_county

from .kafka import CACHE
from .processes import Child, free_port, wait_until
from .stack import SERVICES, SUBSCRIBERS, ServiceProcess, Stack

KEYCLOAK_VERSION = "26.7.3"
DIST_URL = ("https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/"
            f"{KEYCLOAK_VERSION}/keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip")
# The SHA-1 Maven Central publishes beside the zip (DIST_URL + ".sha1"), kept here so a changed
# download fails rather than runs.
DIST_SHA1 = "1e21a7f572581692aacb379dbba8413f99b67208"
JAVA_MIN = 21  # Keycloak 26 runs on Java 21 or newer; Debian 12's default JDK is 17
# Built into the server once (`kc.sh build`), so each start skips Quarkus' 20 s re-augmentation:
# an in-memory database, as a test or `make up` needs.
BUILD_OPTIONS = ("--db=dev-mem",)
# A class-data-sharing archive of Keycloak's classes (made by the JVM at the end of the first run
# that finds none: `install` runs one) and the client compiler alone (C1), for a Keycloak that
# lives minutes: CPU to answer its discovery document, measured 4 times each on the 2-core machine
# beside other test runs, 27-31 s with neither, 17-20 s with C1, 23 s with the archive, 14-15 s
# with both.
ARCHIVE = "townflow-classes.jsa"


def jvm_options(home: Path) -> str:
    return f"-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile={home / ARCHIVE} -XX:+AutoCreateSharedArchive"


REALM = "townflow"
CONSOLE_CLIENT = "townflow-console"
# The optional client scope that adds the services' audiences: asked for only in a token exchange,
# so the console's own access token is accepted by no service, an exchanged one by its service alone.
SERVICES_SCOPE = "townflow-services"


# Every deployable the console calls with a person's token: the four services and notify (消息记录).
AUDIENCES = (*SERVICES, *SUBSCRIBERS)


def audience_of(service: str) -> str:
    return f"townflow-{service}"


def java_home(jvm: Path = Path("/usr/lib/jvm")) -> Path:
    """A JDK of Java 21 or newer: JAVA_HOME when it is one, else the newest under `jvm`."""
    candidates = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    if jvm.is_dir():
        candidates += sorted((p for p in jvm.iterdir() if not p.is_symlink()), key=_java_version, reverse=True)
    for home in candidates:
        if _java_version(home) >= JAVA_MIN and (home / "bin" / "java").exists():
            return home
    raise RuntimeError(f"Keycloak needs Java {JAVA_MIN} or newer: none under /usr/lib/jvm and JAVA_HOME is not one "
                       "(install Temurin 21+, or set JAVA_HOME to such a JDK)")


def _java_version(home: Path) -> int:
    """The feature version of the JDK at `home` from its `release` file (0 when unknown)."""
    try:
        found = re.search(r'^JAVA_VERSION="(\d+)', (home / "release").read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def keycloak_home() -> Path:
    """Keycloak's folder in the cache, downloaded, unpacked and built on first use."""
    home = CACHE / "keycloak" / f"keycloak-{KEYCLOAK_VERSION}"
    if not (home / "bin" / "kc.sh").exists():
        _download_and_unpack(home)
    built = home / ".townflow-build"
    if not built.exists() or built.read_text() != " ".join(BUILD_OPTIONS):
        subprocess.run([str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], check=True, capture_output=True,
                       env={**os.environ, "JAVA_HOME": str(java_home())})
        built.write_text(" ".join(BUILD_OPTIONS))
        (home / ARCHIVE).unlink(missing_ok=True)  # of the previous build's classes
    return home


def install() -> Path:
    """`make keycloak`: downloaded, unpacked, built, and its class archive made by one run."""
    java_home()  # no JDK to run it: say so before 176 MB are fetched
    home = keycloak_home()
    if not (home / ARCHIVE).exists():
        with tempfile.TemporaryDirectory(prefix="townflow-keycloak-") as workdir:
            keycloak = Keycloak(Path(workdir)).start()
            keycloak.stop(timeout=180)  # the JVM writes the archive as it exits
    return home


def _download_and_unpack(home: Path) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    archive = home.parent / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
    if not archive.exists() or _sha1(archive) != DIST_SHA1:
        partial = archive.with_suffix(".partial")
        with urllib.request.urlopen(DIST_URL, timeout=60) as response, partial.open("wb") as out:  # noqa: S310 - a fixed https URL
            shutil.copyfileobj(response, out, 1 << 20)
        if (found := _sha1(partial)) != DIST_SHA1:
            partial.unlink()
            raise RuntimeError(f"{DIST_URL}: SHA-1 {found}, expected {DIST_SHA1}")
        partial.rename(archive)
    unpacking = home.with_name(home.name + ".partial")
    shutil.rmtree(unpacking, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            # The zip's top folder is keycloak-<version>/; its members keep their Unix modes (kc.sh runs).
            target = unpacking / Path(member.filename).relative_to(f"keycloak-{KEYCLOAK_VERSION}")
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            if mode := (member.external_attr >> 16) & 0o777:
                target.chmod(mode)
    unpacking.rename(home)


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - Maven Central's published checksum is SHA-1
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class KeycloakUser:
    """A person who signs in at the provider: their login, name, staff id, town (None: county staff)
    and roles, as the county's files say."""

    login: str
    name: str
    staff_id: str
    town: str | None
    roles: list[str]


def county_users(county: County) -> list[KeycloakUser]:
    """One user per console account of the county's files (the demo county: every staff member)."""
    users = []
    if county.info is not None:
        staff = {s.id: s for s in county.info.staff}
        users += [KeycloakUser(a.login, staff[a.staff].name, a.staff, None, list(staff[a.staff].roles))
                  for a in county.info.accounts]
    for town in county.towns.values():
        users += [KeycloakUser(a.login, town.staff[a.staff].name, a.staff, town.info.code,
                               list(town.staff[a.staff].roles)) for a in town.accounts.values()]
    return users


def _password_credential(password: str) -> dict[str, Any]:
    """The password as Keycloak stores it (PBKDF2-SHA512 at its default 210,000 rounds), hashed once
    here: Keycloak hashing it for each of a county's users on import would take half a minute. One
    salt for all the demo's users, who share the one demo password anyway."""
    salt = hashlib.sha256(password.encode()).digest()[:16]
    value = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 210_000, dklen=64)
    return {"type": "password", "temporary": False,
            "secretData": json.dumps({"value": base64.b64encode(value).decode(),
                                      "salt": base64.b64encode(salt).decode(), "additionalParameters": {}}),
            "credentialData": json.dumps({"hashIterations": 210_000, "algorithm": "pbkdf2-sha512",
                                          "additionalParameters": {}})}


def _claim(name: str, mapper: str, **config: str) -> dict[str, Any]:
    return {"name": name, "protocol": "openid-connect", "protocolMapper": mapper,
            "config": {"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true",
                       "introspection.token.claim": "true", **config}}


# The user profile (Keycloak 24+ refuses attributes it does not declare): the usual four and the two
# Townflow reads, which only an administrator may change.
_PROFILE = {
    "attributes": [
        {"name": "username", "displayName": "${username}", "multivalued": False,
         "validations": {"length": {"min": 3, "max": 255}, "username-prohibited-characters": {},
                         "up-username-not-idn-homograph": {}},
         "permissions": {"view": ["admin", "user"], "edit": ["admin"]}},
        *({"name": name, "displayName": f"${{{name}}}", "multivalued": False,
           "validations": {"length": {"max": 255}},
           "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]}}
          for name in ("email", "firstName", "lastName")),
        *({"name": name, "displayName": label, "multivalued": False,
           "permissions": {"view": ["admin", "user"], "edit": ["admin"]}}
          for name, label in (("staff_id", "工号"), ("town", "乡镇代码"))),
    ],
    "groups": [],
}


def services_scope() -> dict[str, Any]:
    """The console's optional client scope of the services' audiences, one mapper each: a token
    exchange names one of them (`audience`) and gets a token for that service alone."""
    return {"name": SERVICES_SCOPE, "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false"},
            "protocolMappers": [
                {"name": f"audience {service}", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
                 "config": {"included.client.audience": audience_of(service), "access.token.claim": "true",
                            "id.token.claim": "false", "introspection.token.claim": "true"}}
                for service in AUDIENCES]}


def county_realm(county: County, console_url: str, console_secret: str, password: str) -> dict[str, Any]:
    """The realm of the county's staff, for a console at `console_url` (its client scopes are
    Keycloak's defaults: a realm document that lists any has none of the defaults, so
    `Keycloak.add_realm` adds `services_scope()` after)."""
    roles = sorted({role for user in county_users(county) for role in user.roles})
    console = {
        "clientId": CONSOLE_CLIENT, "name": "镇务通工作台", "enabled": True, "protocol": "openid-connect",
        "publicClient": False, "clientAuthenticatorType": "client-secret", "secret": console_secret,
        "standardFlowEnabled": True, "directAccessGrantsEnabled": False, "implicitFlowEnabled": False,
        "serviceAccountsEnabled": False, "fullScopeAllowed": False,
        "redirectUris": [f"{console_url}/signin/oidc/callback"], "webOrigins": [],
        "attributes": {"pkce.code.challenge.method": "S256", "standard.token.exchange.enabled": "true",
                       "post.logout.redirect.uris": f"{console_url}/signin"},
        # The console's own roles are Townflow's: no other application's roles in its tokens.
        "protocolMappers": [
            _claim("staff_id", "oidc-usermodel-attribute-mapper", **{
                "user.attribute": "staff_id", "claim.name": "staff_id", "jsonType.label": "String"}),
            _claim("town", "oidc-usermodel-attribute-mapper", **{
                "user.attribute": "town", "claim.name": "town", "jsonType.label": "String"}),
            _claim("roles", "oidc-usermodel-client-role-mapper", **{
                "usermodel.clientRoleMapping.clientId": CONSOLE_CLIENT, "claim.name": "roles",
                "multivalued": "true", "jsonType.label": "String"}),
        ],
    }
    services = [{"clientId": audience_of(service), "name": f"镇务通{service}", "enabled": True, "bearerOnly": True,
                 "publicClient": False, "standardFlowEnabled": False, "directAccessGrantsEnabled": False}
                for service in AUDIENCES]
    credential = _password_credential(password)
    users = [{"username": u.login, "enabled": True, "emailVerified": True, "firstName": u.name[1:] or u.name,
              "lastName": u.name[:1], "email": f"{u.login}@hechuan.example",
              "attributes": {"staff_id": [u.staff_id], **({"town": [u.town]} if u.town else {})},
              "clientRoles": {CONSOLE_CLIENT: u.roles}, "credentials": [credential]}
             for u in county_users(county)]
    return {
        "realm": REALM, "enabled": True, "displayName": "禾川县统一身份认证",
        "internationalizationEnabled": True, "supportedLocales": ["zh-CN"], "defaultLocale": "zh-CN",
        "clients": [console, *services],
        "roles": {"client": {CONSOLE_CLIENT: [{"name": role, "clientRole": True} for role in roles]}},
        "users": users,
        "components": {"org.keycloak.userprofile.UserProfileProvider": [{
            "providerId": "declarative-user-profile",
            "config": {"kc.user.profile.config": [json.dumps(_PROFILE, ensure_ascii=False)]}}]},
    }


@dataclass
class Keycloak:
    """One Keycloak on loopback: `start()`, then `add_realm(...)`; `stop()` ends it and its children."""

    workdir: Path
    port: int = 0
    child: Child | None = None
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    launched_at: float = 0.0
    start_seconds: float = 0.0  # from launch until its discovery document answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def start(self, timeout: float = 90.0) -> Keycloak:
        return self.launch().wait_ready(timeout)

    def launch(self) -> Keycloak:
        """Start the process and return at once (`wait_ready` waits): start Kafka and PostgreSQL
        meanwhile. Call it from the thread that outlives it (processes.Child)."""
        home = keycloak_home()
        self.port = self.port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ, "JAVA_HOME": str(java_home()),  # for Keycloak alone: Kafka runs on the default JDK
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin", "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "JAVA_OPTS_KC_HEAP": "-Xms64m -Xmx512m",
            # Its transaction log in our folder, not the shared install's.
            "JAVA_OPTS_APPEND": f"-Dquarkus.transaction-manager.object-store.directory={self.workdir / 'tx'} "
                                + jvm_options(home),
        }
        self.child = Child("keycloak", [
            str(home / "bin" / "kc.sh"), "start", "--optimized", "--http-enabled=true",
            "--http-host=127.0.0.1", f"--http-port={self.port}", "--hostname-strict=false",
            "--cache=local",  # one node: no cluster discovery, and nothing listening beyond loopback
        ], log=self.workdir / "keycloak.log", env=env, cwd=self.workdir).start()
        self.launched_at = time.monotonic()
        return self

    def wait_ready(self, timeout: float = 90.0) -> Keycloak:
        wait_until(self._ready, timeout, f"Keycloak on port {self.port}")
        self.start_seconds = time.monotonic() - self.launched_at
        return self

    def _ready(self) -> bool:
        assert self.child is not None
        self.child.check_alive()
        try:
            return httpx.get(f"{self.url}/realms/master/.well-known/openid-configuration", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def admin_token(self) -> str:
        answer = httpx.post(f"{self.url}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin",
            "password": self.admin_password}, timeout=30)
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def add_realm(self, realm: dict[str, Any]) -> None:
        """Create the realm (clients, roles, users) and the console's optional scope of the services'
        audiences through the admin API."""
        with httpx.Client(base_url=f"{self.url}/admin/realms", timeout=120,
                          headers={"Authorization": f"Bearer {self.admin_token()}"}) as admin:
            _created(admin.post("", json=realm))
            _created(admin.post(f"/{REALM}/client-scopes", json=services_scope()))
            scope = next(s["id"] for s in admin.get(f"/{REALM}/client-scopes").json() if s["name"] == SERVICES_SCOPE)
            console = admin.get(f"/{REALM}/clients", params={"clientId": CONSOLE_CLIENT}).json()[0]["id"]
            _created(admin.put(f"/{REALM}/clients/{console}/optional-client-scopes/{scope}"))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to its process group (kc.sh and the JVM it starts: processes.Child gives the child
        a group of its own), SIGKILL to what is left after `timeout`."""
        if self.child is None or self.child.proc is None:
            return
        proc, group = self.child.proc, self.child.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:  # kc.sh reaped (poll), then no JVM left in the group
            wait_until(lambda: proc.poll() is not None and not _group_alive(group), timeout, "Keycloak to stop")
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            proc.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _created(answer: httpx.Response) -> None:
    if not answer.is_success:
        raise RuntimeError(f"Keycloak refused {answer.request.method} {answer.request.url.path}: "
                           f"{answer.status_code} {answer.text[:500]}")


def start_stack_on_keycloak(stack: Stack, keycloak: Keycloak, county_dir: Path, password: str,
                            services: list[str] | None = None) -> ServiceProcess:
    """Start `stack` (not started yet; `services`: the four, or those named) with Keycloak as the
    county's provider: the services verify
    its tokens (its JWKS and issuer, their own audiences, the `staff_id` claim) and the console
    signs staff in there. Keycloak starts while Kafka and PostgreSQL do; the realm is made once the
    console has its address. The console is returned."""
    keycloak.launch()
    stack.extra_env |= {"TOWNFLOW_JWT_JWKS_URL": keycloak.jwks_url, "TOWNFLOW_JWT_ISSUER": keycloak.issuer,
                        "TOWNFLOW_JWT_STAFF_ID_CLAIM": "staff_id"}
    stack.start_infra()
    keycloak.wait_ready()
    stack.start_services(services)
    secret = secrets.token_urlsafe(24)
    console = stack.start_console(
        console_oidc_issuer=keycloak.issuer, console_oidc_client_id=CONSOLE_CLIENT, console_oidc_client_secret=secret,
        console_oidc_staff_id_claim="staff_id", console_oidc_exchange_scope=f"openid {SERVICES_SCOPE}")
    keycloak.add_realm(county_realm(load_county(county_dir), console.url, secret, password))
    return console
