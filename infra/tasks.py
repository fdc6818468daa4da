"""Stopping background tasks at shutdown without ever hanging it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def stop_tasks(
    tasks: Iterable[asyncio.Task[None]], attempts: int = 5, wait_s: float = 1.0
) -> None:
    """Cancel ``tasks`` and wait until they end. A cancellation can be lost inside a library
    (one that catches it mid-call), so a task still running is cancelled again; one that
    outlives every attempt is logged and left behind, because a shutdown that waits forever
    is worse than one task cut off with its event loop."""
    tasks = list(tasks)
    pending = set(tasks)
    for _ in range(attempts):
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait_s)
        if not pending:
            break
    for task in pending:
        log.error("background task would not stop", extra={"task": task.get_name()})
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())


def cancel_requested() -> bool:
    """Whether the running task was asked to stop, even if a library swallowed the
    ``CancelledError`` that asked it: background loops check it, so a lost cancellation
    cannot keep them (and the event loop's own shutdown, which waits for them) running."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
