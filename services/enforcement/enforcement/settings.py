from townflow_shared.settings import ServiceSettings


class EnforcementSettings(ServiceSettings):
    service_name: str = "enforcement"
    http_port: int = 8003
