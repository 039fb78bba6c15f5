"""Draw and write the information-plane figures off the training path.

Drawing a plane with matplotlib and encoding it for TensorBoard takes about 0.15 s per
estimator and measured epoch on a CPU core, while the next training epoch could already run.
``FigureWorker`` runs those jobs, in the order they came, on one background thread: the
figures of a measured epoch appear at most a measurement or two later, and all of them are
written before the fit (or validate run) ends, because ``wait`` is called at teardown and
on an exception, before Lightning closes the loggers.

Only work that is safe off the main thread goes there: matplotlib's object-oriented API on
figures no other thread touches (matplotlib keeps its font cache per thread), TensorBoard's
``SummaryWriter`` (its event queue has a lock), MLflow artifacts and PNG files. W&B logs
from the training thread, so with a ``WandbLogger`` the figures are drawn there
(``_logger_figures.py`` says which adapters can go in the background).

At most ``max_pending`` jobs wait: a measurement that comes while as many are pending waits
for the oldest, so a slow disk slows training down instead of piling up figures in memory.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn


class FigureWorker:
    """One background thread that runs figure jobs in order (see the module docstring)."""

    def __init__(self, max_pending: int = 2) -> None:
        self.max_pending = max_pending
        self._executor: ThreadPoolExecutor | None = None
        self._pending: collections.deque[Future[None]] = collections.deque()

    def submit(self, job: Callable[..., None], *args: Any) -> None:
        """Run ``job(*args)`` on the worker thread; a failure is warned about, not raised."""
        while len(self._pending) >= self.max_pending:
            self._settle(self._pending[0])
            self._pending.popleft()
        if self._executor is None:  # created on first use: never pickled with the callback
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="InfoMetrics-figures")
        self._pending.append(self._executor.submit(job, *args))

    def wait(self) -> None:
        """Block until every submitted job has finished (their failures are warned about)."""
        while self._pending:
            self._settle(self._pending[0])
            self._pending.popleft()  # after the result: an interrupt leaves it to report

    def close(self) -> None:
        """``wait``, then stop the thread (a later ``submit`` starts a new one)."""
        try:
            self.wait()
        finally:  # also when a warning is turned into an error
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._pending.clear()

    @staticmethod
    def _settle(future: Future[None]) -> None:
        try:
            future.result()
        except Exception as err:
            rank_zero_warn(
                f"InfoMetrics could not write its figures: {type(err).__name__}: {err}. "
                "Training goes on; the history is in the callback's state and its CSV/JSON "
                "files."
            )

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (``ddp_spawn`` sends the callback to its workers) without the thread."""
        self.wait()
        return {"max_pending": self.max_pending, "_executor": None, "_pending": collections.deque()}
