"""`python -m notify` runs the service; `python -m notify audit verify|prune` checks or prunes its
audit trail (townflow_shared.audit_trail) as every service's. What it sent, to whom and why not is
its delivery log (GET /v1/deliveries)."""

from townflow_shared.logs import run_service

from .settings import NotifySettings


def main() -> None:
    run_service("notify.app:create_app", NotifySettings())


if __name__ == "__main__":
    main()
