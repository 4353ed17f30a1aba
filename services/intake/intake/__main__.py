"""`python -m intake` runs the service."""

from townflow_shared.logs import serve

from .settings import IntakeSettings


def main() -> None:
    serve("intake.app:create_app", IntakeSettings())


if __name__ == "__main__":
    main()
