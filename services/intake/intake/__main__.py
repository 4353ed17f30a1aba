"""`python -m intake` runs the service; `python -m intake audit verify|prune` checks or prunes its
audit trail (townflow_shared.audit_trail)."""

from townflow_shared import audit_trail
from townflow_shared.logs import serve

from .settings import IntakeSettings


def main() -> None:
    settings = IntakeSettings()
    audit_trail.cli(settings)  # `python -m intake audit verify|prune`
    serve("intake.app:create_app", settings)


if __name__ == "__main__":
    main()
