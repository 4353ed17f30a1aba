"""`python -m enforcement` runs the service; `python -m enforcement audit verify|prune` checks or prunes its
audit trail (townflow_shared.audit_trail)."""

from townflow_shared import audit_trail
from townflow_shared.logs import serve

from .settings import EnforcementSettings


def main() -> None:
    settings = EnforcementSettings()
    audit_trail.cli(settings)  # `python -m enforcement audit verify|prune`
    serve("enforcement.app:create_app", settings)


if __name__ == "__main__":
    main()
