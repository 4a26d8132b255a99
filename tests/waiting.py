"""Waiting on a condition, not on the clock: a test goes on as soon as what it needs has
happened (a request reached the sandbox, a row changed), and fails with a message when
it does not happen within a generous bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0,
               what: str = "condition") -> Any:
    """Poll ``predicate`` from a plain thread until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


async def eventually(predicate: Callable[[], Any], timeout: float = 30.0,
                     what: str = "condition") -> Any:
    """The same inside an event loop: other tasks (the sale, the sync) run meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
