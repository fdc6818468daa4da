"""Shutdown never hangs on a background task, even one that swallows its cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from infra.tasks import cancel_requested, stop_tasks


async def _stubborn(swallowed: list[int], release: asyncio.Event) -> None:
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            swallowed.append(1)  # the library-bug shape: caught and carried on


async def _obedient() -> None:
    await asyncio.sleep(3600)


async def test_a_task_that_swallows_cancellation_is_retried_then_left_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    swallowed: list[int] = []
    release = asyncio.Event()
    stubborn = asyncio.create_task(_stubborn(swallowed, release), name="stubborn")
    obedient = asyncio.create_task(_obedient(), name="obedient")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="infra.tasks"):
        await asyncio.wait_for(stop_tasks([stubborn, obedient], attempts=3, wait_s=0.05), 5)
    assert obedient.cancelled()
    assert not stubborn.done() and len(swallowed) == 3  # cancelled again on every attempt
    assert [r.task for r in caplog.records] == ["stubborn"]  # type: ignore[attr-defined]
    release.set()  # the test's own cleanup: let it end
    await stubborn


async def test_a_task_that_loses_one_cancellation_is_stopped_by_the_next() -> None:
    lost: list[int] = []

    async def loses_once() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            lost.append(1)
        await asyncio.sleep(3600)

    task = asyncio.create_task(loses_once())
    await asyncio.sleep(0)
    await stop_tasks([task], attempts=3, wait_s=0.05)
    assert task.cancelled() and lost == [1]


async def test_a_failed_task_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="infra.tasks"):
        await stop_tasks([task])
    assert any("background task failed" in r.getMessage() for r in caplog.records)


async def test_a_loop_checking_cancel_requested_ends_though_its_call_swallowed_the_cancel() -> None:
    rounds: list[int] = []

    async def swallowing_call() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # a library that turned the cancellation into a normal return

    async def loop() -> None:
        while not cancel_requested():
            rounds.append(1)
            await swallowing_call()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(task, 1)
    assert rounds == [1] and not task.cancelled()
