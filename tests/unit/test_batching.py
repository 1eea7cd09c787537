"""The group-commit coalescer behind partner deliveries' database work."""

from __future__ import annotations

import asyncio
import threading

import pytest

from caisse.jobs.batching import Coalescer


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_an_idle_coalescer_runs_the_first_item_at_once_and_alone():
    calls: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [i * 2 for i in items]

    async def main() -> int:
        return await Coalescer(double).submit(21)

    assert run(main()) == 42
    assert calls == [[21]]


def test_items_submitted_while_a_call_runs_share_the_next_call():
    gate = threading.Event()
    calls: list[list[int]] = []

    def slow(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            gate.wait(5)  # the first call holds until the others have queued
        return [i + 100 for i in items]

    async def main() -> list[int]:
        c: Coalescer[int, int] = Coalescer(slow)
        first = asyncio.create_task(c.submit(0))
        await asyncio.sleep(0.05)  # the first call is running in its thread
        rest = [asyncio.create_task(c.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        return [await first, *[await t for t in rest]]

    assert run(main()) == [100, 101, 102, 103, 104, 105]
    assert calls == [[0], [1, 2, 3, 4, 5]]


def test_a_failing_item_fails_only_its_submitter():
    gate = threading.Event()
    seen: list[list[int]] = []

    def picky(items: list[int]) -> list[str]:
        seen.append(list(items))
        if len(seen) == 1:
            gate.wait(5)
        if 3 in items:
            raise ValueError("three is bad")
        return [str(i) for i in items]

    async def main() -> list[object]:
        c: Coalescer[int, str] = Coalescer(picky)
        first = asyncio.create_task(c.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(c.submit(i)) for i in (1, 2, 3, 4)]
        await asyncio.sleep(0.05)
        gate.set()
        await first
        return list(await asyncio.gather(*rest, return_exceptions=True))

    results = run(main())
    assert results[:2] == ["1", "2"]
    assert isinstance(results[2], ValueError)
    assert results[3] == "4"
    # the batch [1, 2, 3, 4] failed as a whole, then each item ran alone
    assert seen == [[0], [1, 2, 3, 4], [1], [2], [3], [4]]


def test_batches_are_capped():
    gate = threading.Event()
    sizes: list[int] = []

    def count(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(sizes) == 1:
            gate.wait(5)
        return items

    async def main() -> None:
        c: Coalescer[int, int] = Coalescer(count, max_batch=3)
        first = asyncio.create_task(c.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(c.submit(i)) for i in range(1, 8)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)

    run(main())
    assert sizes == [1, 3, 3, 1]


@pytest.mark.parametrize("n", [1, 50])
def test_every_submitter_gets_its_own_result(n):
    def ident(items: list[int]) -> list[int]:
        return items

    async def main() -> list[int]:
        c: Coalescer[int, int] = Coalescer(ident)
        return list(await asyncio.gather(*(c.submit(i) for i in range(n))))

    assert run(main()) == list(range(n))
