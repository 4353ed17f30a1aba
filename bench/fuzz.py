"""`make fuzz`: property-based fuzzing of every service's HTTP API from its OpenAPI document
(schemathesis), on a real stack, as an admin, with no token and with forged tokens; the codes and
other parameters are generated from the schemas. Every check schemathesis has (`--checks all`: no
5xx, each status, content type, header and body as the document declares it, invalid input refused
and valid input accepted, auth not ignored, ...) in every phase and mode; any finding fails the run.

    python -m bench.fuzz [--examples 50] [--seed N] [--service dispatch]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

from devstack.issuer import audience_of
from devstack.stack import Stack

# Everything schemathesis can do: its examples, the coverage of each schema's edges, random
# fuzzing and stateful sequences (links between operations), valid and invalid input alike.
PHASES = "examples,coverage,fuzzing,stateful"
# The rules between fields no schema can state (to after from, ...), taught to the generator; and
# the two edge refusals no schema can state (413, 414) counted as refusals (see the file).
RULES = Path(__file__).with_name("fuzz_rules.py")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def fuzz(url: str, token: str | None, examples: int, seed: int,
         phases: str = PHASES) -> subprocess.CompletedProcess[str]:
    """schemathesis over one service's OpenAPI document with every check; returncode 0 only when
    it found nothing."""
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    return subprocess.run(
        [schemathesis, "--config-file", str(CONFIG), "run", f"{url}/openapi.json", *headers,
         "--checks", "all", "--mode", "all",
         "--phases", phases, "--max-examples", str(examples), "--seed", str(seed), "--no-color"],
        capture_output=True, text=True, env={**os.environ, "SCHEMATHESIS_HOOKS": str(RULES)})


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
    parser.add_argument("--service", action="append", help="only this service (again for more)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"fuzz seed {seed} (replay with --seed {seed})", flush=True)
    stack = Stack.in_temp_dir()
    failures = 0
    try:
        stack.start_infra()
        stack.start_services()
        for name, process in stack.services.items():
            if args.service and name not in args.service:
                continue
            for who, token in callers(stack, name):
                result = fuzz(process.url, token, args.examples, seed)
                ok = result.returncode == 0
                failures += not ok
                print(f"{name} ({who}): {'nothing found' if ok else 'FINDINGS'}", flush=True)
                if not ok:
                    print(result.stdout[-12000:])
    finally:
        stack.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
