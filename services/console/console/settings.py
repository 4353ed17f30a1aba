"""The console's settings (`TOWNFLOW_*`): where the services answer (and notify), how the console signs the
tokens it presents to them, its sessions and how it meets failed sign-ins."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from townflow_shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    service_name: str = "console"
    http_port: int = 8000
    intake_url: str = "http://127.0.0.1:8001"
    dispatch_url: str = "http://127.0.0.1:8002"
    enforcement_url: str = "http://127.0.0.1:8003"
    appraisal_url: str = "http://127.0.0.1:8004"
    notify_url: str = "http://127.0.0.1:8005"  # its delivery log (消息记录, issue #31)
    service_timeout_seconds: float = 10.0
    # The console's connections to the services are dropped after this long idle: below the
    # services' `http_keep_alive_seconds` (75), so a service never closes one the console is using.
    service_keep_alive_seconds: float = 15.0
    # A form with photos (issue #29) may be this large: the photos as chosen, when no script made them
    # smaller first (a browser without it), up to the most an item takes; intake's own limit.
    http_max_upload_bytes: int = 48_000_000
    # The token signer (local runs and tests): a private key whose public half the services' JWKS
    # holds (RS256/ES256), with its key id and the issuer the services expect; without a key file,
    # HS256 with TOWNFLOW_JWT_SECRET. A county puts the console behind its OIDC provider instead.
    console_signing_key_file: Path | None = None
    console_signing_kid: str | None = None
    console_signing_algorithm: str = "RS256"
    console_token_issuer: str | None = None
    console_audience_template: str = "townflow-{service}"  # each service its own audience
    console_token_ttl_seconds: int = 900
    # Sign-in through the county's OIDC provider (docs/security-oidc.md). Its issuer unset: local
    # accounts only. Set: staff sign in there (authorization code with PKCE), and the console calls
    # each service with a token of that service's audience, exchanged at the provider (RFC 8693).
    console_oidc_issuer: str | None = None  # e.g. https://sso.county.example/realms/townflow
    console_oidc_client_id: str = "townflow-console"
    console_oidc_client_secret: SecretStr | None = None  # a confidential client's
    console_oidc_scope: str = "openid"
    # The scope a token exchange asks for: Keycloak's optional client scope that holds the services'
    # audiences (`openid townflow-services`); empty: the scope of the token exchanged.
    console_oidc_exchange_scope: str = ""
    # The ID token's claims naming the staff member (their id in the town's staff file), the town
    # (its code; none for county staff) and the roles; the services read the staff id from the
    # exchanged tokens' TOWNFLOW_JWT_STAFF_ID_CLAIM, the town and roles from `town` and `roles`.
    console_oidc_staff_id_claim: str = "sub"
    console_oidc_town_claim: str = "town"
    console_oidc_roles_claim: str = "roles"
    # The key of the pending sign-in's cookie (state, nonce and PKCE verifier between the redirect
    # and the provider's answer, encrypted): every replica the same, since the answer may reach
    # another one. Unset: a random key per process (one replica, or sign-ins begun elsewhere fail).
    console_oidc_state_key: SecretStr | None = None
    # Sessions live in the console's own database (TOWNFLOW_DATABASE_URL), so every replica sees a
    # sign-out at once (issue #28): one ends after this long without a request of the person's, and
    # this long after sign-in whatever happens (等保 2.0 level 3: 登录连接超时自动退出).
    console_session_idle_minutes: float = 30.0
    console_session_hours: float = 8.0
    # Failed sign-ins: after this many failures within console_sign_in_lock_minutes an account waits
    # that long, counted from the failure that made the number; an address that failed
    # console_sign_in_address_failures times within the same minutes waits as well, whatever login it tries.
    console_sign_in_failures: int = 5
    console_sign_in_lock_minutes: float = 15.0
    console_sign_in_address_failures: int = 20
    console_cookie_secure: bool = False  # True behind HTTPS (the Kubernetes ConfigMap sets it)
    # The address citizens reach the console at (https://zwt.county.example), printed on receipts
    # with a QR code of its status page (/status?ticket=…). Unset: the address the filing was made
    # at, which behind a proxy may be an inside one.
    console_public_url: str | None = None
