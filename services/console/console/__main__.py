"""`python -m console` runs the console; `python -m console hash-password <login>` prints the
argon2 hash of a password typed in (twice), for that login's line in an `accounts.yaml` — a
password the policy refuses (rules.password_weaknesses) gets no hash, only the reasons;
`python -m console audit verify|prune` checks (or prunes) the console's audit chain, as each
service's (docs/security-audit.md)."""

from __future__ import annotations

import getpass
import sys

from townflow_shared import audit_trail
from townflow_shared.logs import serve

from .settings import ConsoleSettings


def main() -> None:
    audit_trail.cli(ConsoleSettings())  # exits when the arguments are `audit …`
    if sys.argv[1:2] == ["hash-password"]:
        from .accounts import hash_password
        from .rules import password_weaknesses

        if len(sys.argv) != 3:
            sys.exit("usage: python -m console hash-password <login>  (the password is checked against it)")
        password = getpass.getpass("password: ")
        if weaknesses := password_weaknesses(password, sys.argv[2]):
            sys.exit("口令不符合要求：" + "；".join(weaknesses))
        if getpass.getpass("again: ") != password:
            sys.exit("两次输入的口令不一致")
        print(hash_password(password))
        return
    serve("console.app:create_app", ConsoleSettings())


if __name__ == "__main__":
    main()
