"""`python -m enforcement` runs the service; `python -m enforcement audit verify|prune` checks or prunes its
audit trail (townflow_shared.audit_trail)."""

from townflow_shared.logs import run_service

from .settings import EnforcementSettings


def main() -> None:
    run_service("enforcement.app:create_app", EnforcementSettings())


if __name__ == "__main__":
    main()
