from pydantic import SecretStr

from townflow_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8001
    # Key of the HMAC that turns a citizen's id number (or phone) into `citizen_ref`.
    citizen_ref_key: SecretStr | None = None
