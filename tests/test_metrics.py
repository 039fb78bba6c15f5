"""MutualInformation: same value as the estimator, caps, units, and a real 2-process gloo run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lit_infobottleneck.estimators import (
    GaussianEstimator,
    HSICEstimator,
    gaussian_mutual_information,
)
from lit_infobottleneck.metrics import MutualInformation
from tests.gloo import gloo_group

N0, N1, D = 700, 333, 3


def _data(n: int = N0 + N1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (n, D) float64, t (n, 2) float64 correlated with x, labels (n,) int64 that shift x."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, D, generator=g, dtype=torch.float64) + labels[:, None]
    mix = torch.tensor([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]], dtype=torch.float64)
    t = x @ mix + torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, t, labels


def _update_in_batches(m: MutualInformation, x: torch.Tensor, y: torch.Tensor, size: int) -> None:
    for i in range(0, x.shape[0], size):
        m.update(x[i : i + size], y[i : i + size])


@pytest.mark.parametrize(
    "spec",
    [GaussianEstimator(), "gaussian", {"name": "gaussian"}, {"name": "gaussian", "ridge": 1e-3}],
    ids=["instance", "name", "dict", "dict-params"],
)
@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "labels"])
def test_matches_estimator(spec, discrete):
    x, t, labels = _data()
    y = labels if discrete else t
    ridge = spec.get("ridge", 1e-6) if isinstance(spec, dict) else 1e-6
    m = MutualInformation(spec)
    m.update(x, y)
    value = m.compute()
    expected = gaussian_mutual_information(x, y, ridge=ridge)
    assert value.dtype == torch.float64
    assert value.dim() == 0
    assert value.item() == expected.item()
    assert value.item() > 0.1


def test_batches_equal_one_batch_and_flatten():
    x, t, labels = _data()
    images = x.repeat(1, 4).reshape(-1, 3, 2, 2)  # (n, 3, 2, 2) -> flattened to (n, 12)
    for y in (t, labels):
        whole = MutualInformation("gaussian")
        whole.update(images, y)
        parts = MutualInformation("gaussian")
        _update_in_batches(parts, images, y, 97)
        assert len(parts.x) == math.ceil(x.shape[0] / 97)
        expected = gaussian_mutual_information(images.reshape(x.shape[0], -1), y)
        assert whole.compute().item() == parts.compute().item() == expected.item()


def test_state_dtypes():
    x, _, labels = _data(50)
    m = MutualInformation("gaussian")
    m.update(x.half(), labels.to(torch.int32))
    assert m.x[0].dtype == torch.float32
    assert m.x[0].shape == (50, D)
    assert m.y[0].dtype == torch.int32
    assert m.y[0].shape == (50,)
    m.update(x[:0], labels[:0])  # an empty batch is ignored
    assert len(m.x) == 1


def test_max_samples_caps_rows_and_uses_the_first_ones():
    x, t, _ = _data()
    m = MutualInformation("gaussian", max_samples=250)
    _update_in_batches(m, x, t, 100)
    assert [b.shape[0] for b in m.x] == [100, 100, 50]
    assert [b.shape[0] for b in m.y] == [100, 100, 50]
    assert m.compute().item() == gaussian_mutual_information(x[:250], t[:250]).item()


def test_max_samples_holds_for_forward_and_merge_state():
    x, t, _ = _data()
    m = MutualInformation("gaussian", max_samples=250)
    for i in range(0, 500, 100):
        assert m(x[i : i + 100], t[i : i + 100]) is None  # forward only accumulates
        assert sum(b.shape[0] for b in m.x) == min(i + 100, 250)
    assert m.compute().item() == gaussian_mutual_information(x[:250], t[:250]).item()

    other = MutualInformation("gaussian", max_samples=250)
    other.update(x[500:700], t[500:700])
    other.merge_state(m)  # torchmetrics puts the incoming rows first
    assert sum(b.shape[0] for b in other.x) == 250
    assert other.compute().item() == gaussian_mutual_information(x[:250], t[:250]).item()


def test_no_cap():
    x, t, _ = _data()
    m = MutualInformation("gaussian", max_samples=None)
    _update_in_batches(m, x, t, 300)
    assert sum(b.shape[0] for b in m.x) == x.shape[0]


@pytest.mark.parametrize("discrete", [False, True])
def test_bits(discrete):
    x, t, labels = _data()
    y = labels if discrete else t
    nats, bits = MutualInformation("gaussian"), MutualInformation("gaussian", unit="bits")
    nats.update(x, y)
    bits.update(x, y)
    assert bits.compute().item() == pytest.approx(nats.compute().item() / math.log(2), rel=1e-15)
    assert bits.compute().dtype == torch.float64


def test_result_unit_of_mi_estimators():
    assert MutualInformation("gaussian").result_unit == "nats"
    assert MutualInformation("gaussian", unit="nats").result_unit == "nats"
    assert MutualInformation("gaussian", unit="bits").result_unit == "bits"


@pytest.mark.parametrize(("normalized", "native"), [(True, "nHSIC"), (False, "HSIC")])
def test_hsic_keeps_its_native_unit(normalized, native):
    """HSIC scores are unitless: compute() returns them as they are and says so."""
    x, _, _ = _data(300)
    spec = {"name": "hsic", "normalized": normalized}
    m = MutualInformation(spec)
    m.update(x, x)  # y = x: nHSIC is exactly 1
    assert m.result_unit == native
    expected = HSICEstimator(normalized=normalized).mutual_information(x, x)
    assert m.compute().item() == expected.item()
    if normalized:
        assert m.compute().item() == pytest.approx(1.0, abs=1e-12)
    named = MutualInformation(spec, unit=native)  # naming the native unit is allowed
    named.update(x, x)
    assert named.result_unit == native
    assert named.compute().item() == m.compute().item()


@pytest.mark.parametrize("unit", ["bits", "nats"])
def test_hsic_rejects_information_units(unit):
    """nHSIC is no information quantity: dividing it by ln 2 (1.0 -> 1.44 'bits') mislabels it."""
    with pytest.raises(ValueError, match=rf"`unit='{unit}'` does not apply to the hsic"):
        MutualInformation({"name": "hsic"}, unit=unit)


def test_reset():
    x, t, _ = _data()
    m = MutualInformation("gaussian")
    m.update(x[:500], t[:500])
    first = m.compute()
    m.reset()
    assert m.x == [] and m.y == []
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"update\(x, y\)"):
        m.compute()
    m.update(x[500:], t[500:])
    second = m.compute()
    assert second.item() == gaussian_mutual_information(x[500:], t[500:]).item()
    assert second.item() != first.item()


def test_compute_without_samples_raises():
    m = MutualInformation("gaussian")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"update\(x, y\)"):
        m.compute()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"estimator": "no-such-estimator"}, ValueError, "unknown estimator"),
        ({"estimator": {"ridge": 1.0}}, ValueError, "'name'"),
        ({"estimator": {"name": "gaussian", "bins": 3}}, ValueError, "unknown parameter"),
        ({"estimator": 3}, TypeError, "estimator"),
        ({"estimator": "gaussian", "unit": "bit"}, ValueError, "unit"),
        ({"estimator": "gaussian", "unit": "nHSIC"}, ValueError, "unit"),
        ({"estimator": "gaussian", "max_samples": 0}, ValueError, "max_samples"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        MutualInformation(**kwargs)


def test_bad_updates():
    x, t, labels = _data(20)
    m = MutualInformation("gaussian")
    with pytest.raises(ValueError, match="20 samples"):
        m.update(x, t[:10])
    with pytest.raises(ValueError, match="must be a real tensor"):
        m.update(x.numpy(), t)
    m.update(x, t)
    with pytest.raises(ValueError, match="per-sample shapes"):
        m.update(x[:, :2], t)
    with pytest.raises(ValueError, match="dtype"):
        m.update(x, labels[:, None].repeat(1, 2))


# ---- a real 2-process gloo run ----------------------------------------------------------------


def _ddp_cases() -> dict[str, tuple[dict, list, list]]:
    """case -> (metric kwargs, rank 0's (x, y) or None, rank 1's (x, y) or None)."""
    x, t, labels = _data()
    cont = [(x[:N0], t[:N0]), (x[N0:], t[N0:])]
    lab = [(x[:N0], labels[:N0]), (x[N0:], labels[N0:])]
    return {
        "continuous": ({}, *cont),
        "labels": ({}, *lab),
        "labels_bits": ({"unit": "bits"}, *lab),
        "capped": ({"max_samples": 800}, *cont),
        "rank1_empty": ({}, lab[0], None),
        "rank0_empty": ({}, None, lab[1]),
        "all_empty": ({}, None, None),
        "shape_mismatch": ({}, cont[0], (x[N0:, :2], t[N0:])),
    }


def _ddp_worker(rank: int, world_size: int, out_dir: str) -> None:
    with gloo_group(rank, world_size, str(Path(out_dir) / "store"), timeout_seconds=60):
        results = {}
        for case, (kwargs, *shards) in _ddp_cases().items():
            m = MutualInformation("gaussian", **kwargs)
            if shards[rank] is not None:
                _update_in_batches(m, *shards[rank], 128)
            try:
                results[case] = m.compute()
            except ValueError as err:
                results[case] = str(err)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)
def test_ddp_uneven_shards_match_single_process(tmp_path):
    world_size = 2
    mp.spawn(_ddp_worker, args=(world_size, str(tmp_path)), nprocs=world_size)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world_size)]

    def expected(shards, max_samples=None, unit="nats"):
        xs, ys = zip(*(s for s in shards if s is not None), strict=True)
        x, y = torch.cat(xs)[:max_samples], torch.cat(ys)[:max_samples]
        mi = gaussian_mutual_information(x, y)
        return mi / math.log(2) if unit == "bits" else mi

    cases = _ddp_cases()
    for case in ("continuous", "labels", "labels_bits", "capped", "rank1_empty", "rank0_empty"):
        kwargs, *shards = cases[case]
        want = expected(shards, **kwargs).item()
        for rank, res in enumerate(results):
            assert isinstance(res[case], torch.Tensor), (case, rank, res[case])
            assert res[case].dtype == torch.float64
            assert abs(res[case].item() - want) <= 1e-10, (case, rank, res[case].item(), want)
    # the cap keeps rank 0's 700 rows and the first 100 of rank 1's
    assert expected(cases["capped"][1:], max_samples=800).item() != expected(cases["capped"][1:])
    for rank, res in enumerate(results):
        assert "update(x, y)" in res["all_empty"], rank
        assert "different shapes" in res["shape_mismatch"], rank
