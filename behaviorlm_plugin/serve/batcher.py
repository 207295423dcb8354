"""Dynamic batching: concurrent requests grouped into one scorer call, with back-pressure and a drain.

One worker task takes the oldest waiting job, then waits at most ``max_wait_s`` for more until it holds
``max_batch`` samples, and runs the batch in a single scoring thread (the event loop keeps accepting
requests meanwhile). The queue is bounded in samples: past ``max_queue`` a submit fails at once with
:class:`Overloaded` (the API answers 503 + Retry-After). :meth:`DynamicBatcher.stop` refuses new work
and returns once every queued and running job has its answer (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class Overloaded(RuntimeError):
    """The queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is at capacity; retry after {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(RuntimeError):
    """The server is draining and takes no new work."""


@dataclass
class _Job:
    samples: list
    future: asyncio.Future


@dataclass
class BatchStats:
    batches: int = 0
    samples: int = 0
    sizes: list[int] = field(default_factory=list)
    """Samples per scorer call, in order (the last 1000)."""

    def add(self, n: int) -> None:
        self.batches += 1
        self.samples += n
        self.sizes = [*self.sizes[-999:], n]


class DynamicBatcher:
    """Groups submitted samples into calls of ``run_batch(samples) -> results`` (same order, same length)."""

    def __init__(
        self,
        run_batch: Callable[[list], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        retry_after_s: int = 1,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_s >= 0")
        self.run_batch = run_batch
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.retry_after_s = retry_after_s
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        self._running = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closing = False
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def running(self) -> int:
        """Samples in the batch being scored (0 when the scorer is idle)."""
        return self._running

    def start(self) -> None:
        """Start the worker (again after :meth:`stop`: an app's lifespan may run more than once, as in tests)."""
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="behaviorlm-score")
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="behaviorlm-batcher")

    async def submit(self, samples: list) -> list:
        """The results of ``samples``, scored in one or more batches with other requests' samples."""
        if self._closing or self._worker is None:
            raise ShuttingDown("the server is shutting down")
        if self._queued + len(samples) > self.max_queue:
            raise Overloaded(self.retry_after_s)
        job = _Job(list(samples), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._queued += len(job.samples)
        self._wake.set()
        return await job.future

    async def stop(self) -> None:
        """Take no new work, finish every queued and running job, then stop the worker."""
        self._closing = True
        if self._worker is not None:
            self._wake.set()
            await self._worker
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _take(self) -> list[_Job]:
        """Jobs for one batch: whole jobs, oldest first, up to max_batch samples (at least one job)."""
        taken, n = [], 0
        while self._jobs:
            job = self._jobs[0]
            if job.future.done():  # cancelled (the caller timed out): drop it
                self._jobs.popleft()
                self._queued -= len(job.samples)
                continue
            if taken and n + len(job.samples) > self.max_batch:
                break
            taken.append(self._jobs.popleft())
            n += len(job.samples)
            self._queued -= len(job.samples)
        return taken

    async def _gather_window(self) -> None:
        """Wait up to max_wait_s after the oldest job for the batch to fill (no wait when draining)."""
        deadline = time.monotonic() + self.max_wait_s
        while self._queued < self.max_batch and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._gather_window()
            jobs = self._take()
            if jobs:
                await self._run_jobs(loop, jobs)

    async def _run_jobs(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        flat = [s for job in jobs for s in job.samples]
        self._running = len(flat)
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, flat)
        except Exception as err:  # one bad job must not fail its batch mates: retry each alone
            if len(jobs) == 1:
                _settle(jobs[0], error=err)
                return
            for job in jobs:
                await self._run_jobs(loop, [job])
            return
        finally:
            self._running = 0
        self.stats.add(len(flat))
        i = 0
        for job in jobs:
            _settle(job, result=list(results[i : i + len(job.samples)]))
            i += len(job.samples)


def _settle(job: _Job, *, result: list | None = None, error: BaseException | None = None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)
