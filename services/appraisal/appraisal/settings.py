from townflow_shared.settings import ServiceSettings


class AppraisalSettings(ServiceSettings):
    service_name: str = "appraisal"
    http_port: int = 8004
