"""`make fuzz` at a reduced size, on a stack of its own (the fuzzer files, rates and moves clocks
at random): every service's HTTP API from its OpenAPI document, with an admin token, without one
and with a forged one, under every check schemathesis has; any finding fails. Of the two forgeries
the seed picks one per service, at fewer examples (a forged token ends in 401 before anything
else is read; `make fuzz` runs both, and test_tokens.py checks every forgery on the stack): each
schemathesis run costs its start-up of seconds of CPU, and this test shares two cores with the rest."""

from __future__ import annotations

import asyncio
import random

import pytest

from bench.fuzz import callers, fuzz
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
            admin, nobody, *forged = callers(stack, name)
            for (who, token), examples in ((admin, 10), (nobody, 10), (pick.choice(forged), 3)):
                result = await asyncio.to_thread(fuzz, service.url, token, examples, seed)
                assert result.returncode == 0, f"{name} ({who}), seed {seed}:\n{result.stdout[-4000:]}"
    finally:
        await asyncio.to_thread(stack.stop)
