"""`python -m enforcement` runs the service."""

from townflow_shared.logs import serve

from .settings import EnforcementSettings


def main() -> None:
    serve("enforcement.app:create_app", EnforcementSettings())


if __name__ == "__main__":
    main()
