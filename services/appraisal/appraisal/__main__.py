"""`python -m appraisal` runs the service."""

from townflow_shared.logs import serve

from .settings import AppraisalSettings


def main() -> None:
    serve("appraisal.app:create_app", AppraisalSettings())


if __name__ == "__main__":
    main()
