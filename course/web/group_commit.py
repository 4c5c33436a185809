"""Group commit for an event loop: what arrives while one batch is being made durable goes
together in the next one.

A burst of one-click POSTs must each be on disk before it is answered. One write and one
fsync per request, each in a thread of its own, costs more CPU per request than the rest of
the request put together; one write and one fsync for everything that queued up while the
previous fsync ran costs the same for one request or a thousand. Every caller is answered
only after the batch holding its own item has been committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class GroupCommit(Generic[Item, Outcome]):
    """`await submit(item)` queues `item` and returns its outcome once it is committed.

    `commit(items)` runs in a worker thread, one batch at a time, and returns one result per
    item, in order; an Exception result is raised to that item's caller. If commit() itself
    raises, every caller in the batch gets that error. Use it from one event loop.

    `settle(results)`, if given, is awaited after a commit and before its callers hear back,
    once per batch, without holding up the next commit (a short, bounded wait for whatever
    follows the commit; its errors are ignored: the commit stands).
    """

    def __init__(
        self,
        commit: Callable[[list[Item]], Sequence[Outcome | Exception]],
        *,
        settle: Callable[[Sequence[Outcome | Exception]], Awaitable[object]] | None = None,
    ) -> None:
        self._commit = commit
        self._settle = settle
        self._queued: list[tuple[Item, asyncio.Future[Outcome]]] = []
        # Held: the event loop keeps only weak references to tasks.
        self._drainer: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self.batches = 0  # how many commits ran (for tests and benchmarks)

    async def submit(self, item: Item) -> Outcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queued.append((item, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                items = [item for item, _ in batch]
                results: Sequence[Outcome | Exception]
                try:
                    results = await asyncio.to_thread(self._commit, items)
                    if len(results) != len(batch):
                        raise RuntimeError(
                            f"commit returned {len(results)} results for {len(batch)} items"
                        )
                except Exception as exc:  # every caller in the batch hears of it
                    results = [exc] * len(batch)
                self.batches += 1
                if self._settle is None:
                    _answer(batch, results)
                else:
                    task = asyncio.get_running_loop().create_task(self._then(batch, results))
                    self._settling.add(task)
                    task.add_done_callback(self._settling.discard)
                batch = []
        finally:
            # Cancelled (the server is shutting down): nobody waits forever; whatever was
            # committed or not, the callers were not told it was, so they promised nothing.
            for _, future in batch + self._queued:
                future.cancel()
            self._queued = []
            self._drainer = None

    async def _then(
        self,
        batch: list[tuple[Item, asyncio.Future[Outcome]]],
        results: Sequence[Outcome | Exception],
    ) -> None:
        assert self._settle is not None
        try:
            with contextlib.suppress(Exception):
                await self._settle(results)
        finally:
            _answer(batch, results)


def _answer(
    batch: Sequence[tuple[Item, asyncio.Future[Outcome]]],
    results: Sequence[Outcome | Exception],
) -> None:
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():  # the caller gave up (cancelled)
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)
