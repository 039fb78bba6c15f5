"""The figure thread: jobs in order, a bounded queue, failures warned, picklable."""

from __future__ import annotations

import pickle
import threading

import pytest

from lit_infobottleneck.callbacks._figure_worker import FigureWorker


def test_jobs_run_in_order_on_one_background_thread():
    worker = FigureWorker()
    done: list[tuple[int, str]] = []
    for k in range(5):
        worker.submit(lambda k=k: done.append((k, threading.current_thread().name)))
    worker.close()
    assert [k for k, _ in done] == list(range(5))
    assert len({name for _, name in done}) == 1
    assert done[0][1].startswith("InfoMetrics-figures")


def test_at_most_max_pending_jobs_wait():
    worker = FigureWorker(max_pending=2)
    release = threading.Event()
    started: list[int] = []

    def job(k: int) -> None:
        started.append(k)
        release.wait(timeout=30)

    worker.submit(job, 0)
    worker.submit(job, 1)
    blocked = threading.Thread(target=worker.submit, args=(job, 2))
    blocked.start()
    blocked.join(timeout=0.5)
    assert blocked.is_alive()  # the third measurement waits for the oldest figure job
    release.set()
    blocked.join(timeout=30)
    assert not blocked.is_alive()
    worker.close()
    assert started == [0, 1, 2]


def test_a_failing_job_is_warned_about_and_the_next_still_runs():
    worker = FigureWorker()
    done: list[int] = []

    def broken() -> None:
        raise OSError("disk full")

    worker.submit(broken)
    worker.submit(done.append, 1)
    with pytest.warns(UserWarning, match="could not write its figures: OSError: disk full"):
        worker.close()
    assert done == [1]


def test_pickles_without_its_thread_after_the_pending_jobs():
    worker = FigureWorker()
    release = threading.Event()
    done: list[int] = []

    def slow(k: int) -> None:
        release.wait(timeout=30)
        done.append(k)

    worker.submit(slow, 1)
    threading.Timer(0.3, release.set).start()  # the job is still running when pickled
    copy = pickle.loads(pickle.dumps(worker))  # as ddp_spawn sends the callback
    assert done == [1]  # pickling waited for the pending job
    copy.submit(done.append, 2)
    copy.close()
    worker.close()
    assert done == [1, 2]
    assert copy._executor is None and worker._executor is None
