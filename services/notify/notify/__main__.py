"""`python -m notify` runs the service; `python -m notify audit verify|prune` is not offered: notify
keeps no audit trail of its own (its delivery log is its record, GET /v1/deliveries)."""

from townflow_shared.logs import run_service

from .settings import NotifySettings


def main() -> None:
    run_service("notify.app:create_app", NotifySettings())


if __name__ == "__main__":
    main()
