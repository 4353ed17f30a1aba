"""`python -m dispatch` runs the service; `python -m dispatch audit verify|prune` checks or prunes its
audit trail (townflow_shared.audit_trail)."""

from townflow_shared.logs import run_service

from .settings import DispatchSettings


def main() -> None:
    run_service("dispatch.app:create_app", DispatchSettings())


if __name__ == "__main__":
    main()
