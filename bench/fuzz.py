"""`make fuzz`: property-based fuzzing of every service's HTTP API from its OpenAPI document
(schemathesis), on a real stack, as an admin, with no token and with forged tokens; the codes and
other parameters are generated from the schemas. Passes when no request gets a 5xx answer.

    python -m bench.fuzz [--examples 50] [--seed N]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

from devstack.issuer import audience_of
from devstack.stack import Stack


def fuzz(url: str, token: str | None, examples: int, seed: int) -> subprocess.CompletedProcess[str]:
    """schemathesis over one service's OpenAPI document; returncode 0 when nothing answered 5xx."""
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    return subprocess.run(
        [schemathesis, "run", f"{url}/openapi.json", *headers, "--checks", "not_a_server_error",
         "--max-examples", str(examples), "--seed", str(seed), "--phases=examples,fuzzing"],
        capture_output=True, text=True)


def callers(stack: Stack, service: str) -> list[tuple[str, str | None]]:
    """Who the fuzzer calls as: an admin (every route reached), nobody, and forged tokens (alg
    none, an unknown key) that must end in 401 on every route, never a 5xx."""
    forged = stack.issuer.forgeries(audience_of(service))
    return [("admin", stack.token(service, "s000", ["admin"])), ("no token", None),
            ("alg none", forged["alg none"]), ("a key not in the JWKS", forged["a key not in the JWKS"])]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz")
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"fuzz seed {seed} (replay with --seed {seed})", flush=True)
    stack = Stack.in_temp_dir()
    failures = 0
    try:
        stack.start_infra()
        stack.start_services()
        for name, process in stack.services.items():
            for who, token in callers(stack, name):
                result = fuzz(process.url, token, args.examples, seed)
                ok = result.returncode == 0
                failures += not ok
                print(f"{name} ({who}): {'no 5xx' if ok else 'FAILED'}", flush=True)
                if not ok:
                    print(result.stdout[-4000:])
    finally:
        stack.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
