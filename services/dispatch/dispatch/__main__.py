"""`python -m dispatch` runs the service."""

from townflow_shared.logs import serve

from .settings import DispatchSettings


def main() -> None:
    serve("dispatch.app:create_app", DispatchSettings())


if __name__ == "__main__":
    main()
