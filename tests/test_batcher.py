"""Serving a classroom (issue #24): coalesced grids equal solo grids bitwise, short requests go before a long job's next
batch, and past the queue's bound a request is told the Space is busy at once."""
import threading
import time

import gradio as gr
import pytest
import torch

from core.noise import NoiseConfig
from core.sampling import SamplerConfig, generate, generate_grids
from demo import handlers as H
from demo.batcher import BUSY, Busy, Coalescer, ModelLock

GRIDS = [([0, 1, 2, 3], [3] * 4, [1.0]), ([50, 51], [5, 6], [0.0]), ([0, 7, 9], [1, 2, 3], [0.0, 2.5, -1.0])]


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
@pytest.mark.parametrize("name", ["digits", "emoji"])
def test_grids_sampled_together_equal_each_grid_alone(rt, name, sampler):
    """generate_grids (one sampler run over every request's rows) gives each grid generate's pixels, bit for bit."""
    model = rt.slot(name).pipe.model
    sc = SamplerConfig(sampler, 3)
    together = generate_grids(model, GRIDS, sc)
    for grid, x in zip(GRIDS, together):
        assert torch.equal(x, generate(model, *grid, sc))
    noise = NoiseConfig(truncation=1.0)  # the noise options travel with the run too
    assert torch.equal(generate_grids(model, GRIDS[:2], sc, noise)[0], generate(model, *GRIDS[0], sc, noise))


def test_concurrent_rows_share_one_run_and_keep_their_pixels(rt):
    """Rows requested while the model is busy are sampled in one run, each as it would be alone."""
    slot = rt.slot("digits")
    sc = SamplerConfig("ddim", 3)
    k_rows = slot.batcher.max_rows // 8  # as many rows of 8 as one run takes
    assert k_rows >= 2
    seeds = [[100 + 10 * k + i for i in range(8)] for k in range(k_rows)]
    solo = [generate(slot.pipe.model, s, [k] * 8, [1.0 + k], sc) for k, s in enumerate(seeds)]
    out: dict[int, torch.Tensor] = {}
    runs = slot.batcher.runs
    with slot.lock:  # the model is busy: the four requests queue up behind it
        threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, H._sample(slot, seeds[k], [k] * 8, [1.0 + k], sc)))
                   for k in range(k_rows)]
        for t in threads:
            t.start()
        deadline = time.time() + 10
        while slot.batcher.waiting() < k_rows and time.time() < deadline:
            time.sleep(0.01)
    for t in threads:
        t.join(30)
    assert slot.batcher.runs == runs + 1  # one sampler run served them all
    assert all(torch.equal(out[k], solo[k]) for k in range(k_rows))


def test_past_the_bound_a_request_hears_busy_at_once():
    """At twice the queue's bound, the first MAX requests are served and the rest are refused at once with BUSY."""
    lock = ModelLock()
    served = []

    def run(grids, sampling, noise):
        served.extend(grids)
        return [torch.zeros(1) for _ in grids]

    co = Coalescer(run, lock, max_queued=4, max_rows=1)
    outcome: list[str] = []
    with lock:  # hold the model: requests pile up in the queue
        threads = [threading.Thread(target=lambda k=k: outcome.append(_try(co, k))) for k in range(8)]
        for t in threads:
            t.start()
        deadline = time.time() + 5
        while outcome.count(BUSY) < 4 and time.time() < deadline:
            time.sleep(0.01)
        assert outcome.count(BUSY) == 4 and co.waiting() == 4  # refused while the model was still busy: no hang
    for t in threads:
        t.join(5)
    assert sorted(outcome) == [BUSY] * 4 + ["ok"] * 4 and len(served) == 4
    assert issubclass(Busy, gr.Error)  # the app shows it as a message, not a traceback


def _try(co: Coalescer, k: int) -> str:
    try:
        co.submit(([k], [0], [0.0]), SamplerConfig("ddim", 1))
        return "ok"
    except Busy as e:
        return e.message


def test_a_short_request_goes_before_a_long_jobs_next_batch():
    """A curve waiting for its next batch lets a waiting slider row go first (ModelLock.urgent)."""
    lock, order = ModelLock(), []

    def curve_batch():
        with lock:
            order.append("curve")

    def row():
        with lock.urgent():
            order.append("row")

    lock.acquire()  # a batch in progress
    long_job = threading.Thread(target=curve_batch)
    long_job.start()
    time.sleep(0.1)  # the curve's next batch waits first
    short = threading.Thread(target=row)
    short.start()
    time.sleep(0.1)
    lock.release()
    long_job.join(5)
    short.join(5)
    assert order == ["row", "curve"]


def test_an_error_reaches_every_request_of_the_run_and_the_worker_lives_on():
    lock, calls = ModelLock(), []

    def run(grids, sampling, noise):
        calls.append(len(grids))
        if len(calls) == 1:
            raise ValueError("boom")
        return [torch.ones(1) for _ in grids]

    co = Coalescer(run, lock)
    with pytest.raises(ValueError, match="boom"):
        co.submit(([0], [0], [0.0]), SamplerConfig("ddim", 1))
    assert co.submit(([0], [0], [0.0]), SamplerConfig("ddim", 1)).item() == 1.0


def test_two_models_short_runs_take_turns_on_the_cores(rt):
    """The models' queues share one gate: while one model's rows sample, the other's wait (no two runs fight over the
    same cores)."""
    a, b = rt.slot("digits").batcher, rt.slot("emoji").batcher
    assert a.gate is b.gate
    active, overlaps = [], []

    def run(grids, sampling, noise):
        active.append(1)
        overlaps.append(len(active))
        time.sleep(0.2)
        active.pop()
        return [torch.zeros(1) for _ in grids]

    qa, qb = Coalescer(run, ModelLock(), gate=a.gate), Coalescer(run, ModelLock(), gate=a.gate)
    threads = [threading.Thread(target=q.submit, args=(([k], [0], [0.0]), SamplerConfig("ddim", 1)))
               for k, q in enumerate([qa, qb, qa, qb])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(overlaps) >= 2 and max(overlaps) == 1


def test_the_lock_passes_in_the_order_of_asking():
    """A thread that releases the lock and asks again queues behind those already waiting (no model starves)."""
    lock, order = ModelLock(), []
    lock.acquire()

    def waiter(name):
        with lock.urgent():
            order.append(name)

    first = threading.Thread(target=waiter, args=("other model",))
    first.start()
    time.sleep(0.1)
    lock.release()
    with lock.urgent():  # the releasing thread asks again at once
        order.append("same model again")
    first.join(5)
    assert order == ["other model", "same model again"]
