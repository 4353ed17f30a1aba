"""`python -m dispatch` runs the service; `python -m dispatch audit verify|prune` checks or prunes its
audit trail (townflow_shared.audit_trail)."""

from townflow_shared import audit_trail
from townflow_shared.logs import serve

from .settings import DispatchSettings


def main() -> None:
    settings = DispatchSettings()
    audit_trail.cli(settings)  # `python -m dispatch audit verify|prune`
    serve("dispatch.app:create_app", settings)


if __name__ == "__main__":
    main()
