"""MutualInformation under a real 3-process gloo group: estimate once on rank 0, broadcast.

A test estimator returns ``rank + 0.5`` (an estimator whose value depends on the process,
like a critic trained per rank) or raises on chosen ranks, and counts its calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lit_infobottleneck.estimators import Estimator
from lit_infobottleneck.metrics import MutualInformation
from tests.gloo import gloo_group

WORLD_SIZE = 3
SUBGROUP = [1, 2]


class _CriticError(ValueError):
    """A custom exception type that pickles (one message argument)."""


class _TwoArgError(Exception):
    """An exception that pickles but does not unpickle: ``__init__`` needs two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")


class _RankEstimator(Estimator):
    """Returns ``rank + 0.5`` (global rank), or raises ``error`` on the ranks in ``fail_on``."""

    name = "rank-test"

    def __init__(self, fail_on: tuple[int, ...] = (), error: Exception | None = None) -> None:
        self.fail_on = fail_on
        self.error = error
        self.calls = 0

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        self.calls += 1
        rank = dist.get_rank()
        if rank in self.fail_on:
            assert self.error is not None
            raise self.error
        return torch.tensor(rank + 0.5, dtype=torch.float64)

    def params(self) -> dict[str, Any]:
        return {}


def _cases(subgroup: Any) -> dict[str, tuple[_RankEstimator, dict[str, Any]]]:
    """case -> (estimator, metric kwargs); every rank builds the same cases in the same order."""
    return {
        "rank_value": (_RankEstimator(), {}),
        "raise_on_rank0": (_RankEstimator((0,), RuntimeError("critic diverged")), {}),
        "raise_custom": (_RankEstimator((0,), _CriticError("too few samples")), {}),
        "raise_unpicklable": (_RankEstimator((0,), _TwoArgError(7, "bad kernel")), {}),
        "raise_on_rank1": (_RankEstimator((1,), RuntimeError("rank 1 only")), {}),
        "after_errors": (_RankEstimator(), {}),
        "local": (_RankEstimator(), {"sync_on_compute": False}),
        "subgroup": (_RankEstimator(), {"process_group": subgroup}),
    }


def _worker(rank: int, out_dir: str) -> None:
    with gloo_group(rank, WORLD_SIZE, str(Path(out_dir) / "store"), timeout_seconds=30):
        subgroup = dist.new_group(SUBGROUP)  # every rank takes part in creating it
        g = torch.Generator().manual_seed(rank)
        results: dict[str, Any] = {}
        for case, (estimator, kwargs) in _cases(subgroup).items():
            if case == "subgroup" and rank not in SUBGROUP:
                continue
            m = MutualInformation(estimator, **kwargs)
            m.update(torch.randn(10 + rank, 2, generator=g), torch.randn(10 + rank, 2, generator=g))
            try:
                value = m.compute()
                results[case] = {"value": value.item(), "dtype": str(value.dtype)}
            except Exception as err:  # the test compares what each rank raised
                results[case] = {"error": type(err).__name__, "message": str(err)}
            results[case]["calls"] = estimator.calls
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(out),), nprocs=WORLD_SIZE)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()),
        reason="needs torch.distributed gloo",
    ),
]


def test_rank_dependent_estimate_is_computed_once_and_broadcast(ranks):
    for case in ("rank_value", "after_errors"):
        for rank, res in enumerate(ranks):
            assert res[case]["value"] == 0.5, (case, rank, res[case])  # rank 0's value
            assert res[case]["dtype"] == "torch.float64"
            assert res[case]["calls"] == (1 if rank == 0 else 0), (case, rank)


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("raise_on_rank0", "RuntimeError", "critic diverged"),
        ("raise_custom", "_CriticError", "too few samples"),
    ],
)
def test_error_on_rank0_is_raised_on_every_rank(ranks, case, error, message):
    for rank, res in enumerate(ranks):
        assert res[case] == {"error": error, "message": message, "calls": int(rank == 0)}, rank


def test_error_that_cannot_be_rebuilt_is_raised_as_runtime_error(ranks):
    assert ranks[0]["raise_unpicklable"]["error"] == "_TwoArgError"
    for rank in range(1, WORLD_SIZE):
        res = ranks[rank]["raise_unpicklable"]
        assert res["error"] == "RuntimeError", rank
        assert "_TwoArgError" in res["message"] and "code 7: bad kernel" in res["message"], rank


def test_error_on_another_rank_is_never_reached(ranks):
    for rank, res in enumerate(ranks):
        assert res["raise_on_rank1"]["value"] == 0.5, rank


def test_unsynced_metric_computes_on_each_rank(ranks):
    for rank, res in enumerate(ranks):
        assert res["local"]["value"] == rank + 0.5, rank
        assert res["local"]["calls"] == 1, rank


def test_process_group_broadcasts_from_its_first_rank(ranks):
    assert "subgroup" not in ranks[0]
    for rank in SUBGROUP:
        res = ranks[rank]["subgroup"]
        assert res["value"] == SUBGROUP[0] + 0.5, (rank, res)
        assert res["calls"] == int(rank == SUBGROUP[0]), rank
