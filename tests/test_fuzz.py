"""`make fuzz` at a reduced size, on a stack of its own (the fuzzer files, rates and moves clocks
at random): every service's HTTP API from its OpenAPI document, with an admin token and with one
caller who must be refused, under every check schemathesis has; any finding fails. The refused
caller (the seed picks one per service: no token, or one of the forgeries) ends in 401 before
anything else is read, so that run takes random requests only, a few per operation: the schema's
edge cases (the coverage phase) and call sequences (stateful) are the admin's, who reaches every
route. `make fuzz` runs every caller in every phase; test_access.py checks the 401 without a token
on every route and test_tokens.py every forgery on the stack. This test shares two cores with the
rest of `make test`."""

from __future__ import annotations

import asyncio
import random

import pytest

from bench.fuzz import PHASES, callers, fuzz
from devstack.stack import Stack


@pytest.mark.timeout(900)
async def test_schemathesis_with_every_check_finds_nothing_in_any_service() -> None:
    seed = random.SystemRandom().randrange(2**31)
    print(f"fuzz seed {seed} (replay: python -m bench.fuzz --seed {seed} --examples 10)")
    stack = Stack.in_temp_dir()
    try:
        await asyncio.to_thread(stack.start_infra)
        await asyncio.to_thread(stack.start_services)
        pick = random.Random(seed)
        for name, service in stack.services.items():
            admin, *refused = callers(stack, name)
            for (who, token), examples, phases in ((admin, 10, PHASES),
                                                   (pick.choice(refused), 3, "examples,fuzzing")):
                result = await asyncio.to_thread(fuzz, service.url, token, examples, seed, phases)
                assert result.returncode == 0, f"{name} ({who}), seed {seed}:\n{result.stdout[-4000:]}"
    finally:
        await asyncio.to_thread(stack.stop)
