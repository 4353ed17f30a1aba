"""`python -m console` runs the console; `python -m console hash-password` prints the argon2 hash
of a password typed in, for an `accounts.yaml`."""

from __future__ import annotations

import getpass
import sys

from townflow_shared.logs import serve

from .settings import ConsoleSettings


def main() -> None:
    if sys.argv[1:2] == ["hash-password"]:
        from .accounts import hash_password

        print(hash_password(getpass.getpass("password: ")))
        return
    serve("console.app:create_app", ConsoleSettings())


if __name__ == "__main__":
    main()
