"""Serving a classroom on one model (issue #24): short requests first, concurrent requests coalesced into one run, and
a bounded queue that answers "busy" instead of hanging.

ModelLock: the model's lock, where a short request (a slider row, a grid) waiting for it goes before a long job's next
    batch (a live curve releases the lock after every batch), so a curve never starves the rows.
Coalescer: one worker per model takes every queued request that can share a sampler run (same sampler, T, v, method,
    noise) and samples them together with core.sampling.generate_grids; each result is bitwise what it would be alone.
    The workers of all models share one gate, so two models' rows never run at once and fight over the same cores.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import gradio as gr
from torch import Tensor

from core.noise import NoiseConfig
from core.sampling import SamplerConfig

Grid = tuple[list[int], list[int], list[float]]  # seeds, labels, ws: one same-seed grid
BUSY = "The Space is busy, try again in a few seconds"
MAX_QUEUED = 16  # requests waiting per model before new ones are told BUSY: ≈ 6–12 s of rows on 2 cores
# Sample rows per coalesced run: two rows of 8. Unguided rows then share one network chunk of 16; guided rows fill a
# chunk each anyway ([cond; uncond]), and a larger run only makes everyone in it wait for the whole run.
MAX_ROWS = 16


class Busy(gr.Error):
    """The model's queue is full: the request is refused at once, with BUSY as its message (a toast, no traceback)."""


class ModelLock:
    """A fair lock with two classes of waiters: urgent() ones (short requests) go before plain `with lock:` ones, and
    within a class the lock passes in the order of asking (a releasing thread cannot take it straight back while
    another waits, as it can with a plain Lock: that starved one model's rows behind the other's)."""

    def __init__(self):
        self._cv = threading.Condition()
        self._held = False
        self._tickets = itertools.count()
        self._waiting: list[tuple[bool, int]] = []  # (not urgent, ticket): the smallest goes next

    def acquire(self, urgent: bool = False) -> None:
        with self._cv:
            me = (not urgent, next(self._tickets))
            self._waiting.append(me)
            while self._held or min(self._waiting) != me:
                self._cv.wait()
            self._waiting.remove(me)
            self._held = True

    def release(self) -> None:
        with self._cv:
            assert self._held, "release of an unheld ModelLock"
            self._held = False
            self._cv.notify_all()

    def __enter__(self) -> "ModelLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextmanager
    def urgent(self) -> Iterator["ModelLock"]:
        """`with lock.urgent():` acquires ahead of every plain waiter."""
        self.acquire(urgent=True)
        try:
            yield self
        finally:
            self.release()


@dataclass
class _Job:
    grid: Grid
    sampling: SamplerConfig
    noise: NoiseConfig
    done: threading.Event = field(default_factory=threading.Event)
    result: Tensor | None = None
    error: BaseException | None = None

    @property
    def rows(self) -> int:
        return len(self.grid[0]) * len(self.grid[2])


RunGrids = Callable[[list[Grid], SamplerConfig, NoiseConfig], list[Tensor]]


class Coalescer:
    """One model's sampling queue: submit() blocks until its grid is sampled, possibly together with others."""

    def __init__(self, run: RunGrids, lock: ModelLock, max_queued: int = MAX_QUEUED, max_rows: int = MAX_ROWS,
                 gate: ModelLock | None = None):
        assert max_queued >= 1 and max_rows >= 1, (max_queued, max_rows)
        self.run, self.lock = run, lock
        self.gate = gate if gate is not None else ModelLock()  # shared by every model's queue: one run on the cores
        self.max_queued, self.max_rows = max_queued, max_rows
        self.runs = self.jobs = 0  # sampler runs made and requests served (coalescing = jobs / runs)
        self._queue: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._worker: threading.Thread | None = None

    def submit(self, grid: Grid, sampling: SamplerConfig, noise: NoiseConfig = NoiseConfig()) -> Tensor:
        """The grid sampled as generate would sample it alone; raises Busy at once when max_queued requests wait."""
        job = _Job(grid, sampling, noise)
        with self._cv:
            if len(self._queue) >= self.max_queued:
                raise Busy(BUSY)
            self._queue.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="coalescer", daemon=True)
                self._worker.start()
            self._cv.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def waiting(self) -> int:
        with self._cv:
            return len(self._queue)

    def _take(self) -> list[_Job]:
        """The oldest request and every queued one that can share its run, up to max_rows sample rows."""
        with self._cv:
            first = self._queue.popleft()
            batch, rows = [first], first.rows
            for job in list(self._queue):
                if (job.sampling, job.noise) == (first.sampling, first.noise) and rows + job.rows <= self.max_rows:
                    self._queue.remove(job)
                    batch.append(job)
                    rows += job.rows
            return batch

    def _work(self) -> None:
        while True:
            with self._cv:  # 1. wait for a request
                while not self._queue:
                    self._cv.wait()
            batch: list[_Job] = []
            try:
                # 2. Once the model is ours, take every request that can share the run (more arrive while we wait).
                with self.gate.urgent(), self.lock.urgent():
                    batch = self._take()
                    results = self.run([j.grid for j in batch], batch[0].sampling, batch[0].noise)
                for job, x in zip(batch, results):
                    job.result = x
            except Exception as e:  # every request of the run gets the error; the worker lives on
                for job in batch:
                    job.error = e
            finally:
                self.runs += 1
                self.jobs += len(batch)
                for job in batch:
                    job.done.set()
