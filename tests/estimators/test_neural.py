"""Neural MI bounds: formulas on known score matrices, then trained critics on data with
analytic mutual information (correlated Gaussians, labels), the InfoNCE log(k) ceiling,
determinism, the trace, the registered estimators and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lit_infobottleneck.estimators.neural import (
    BOUNDS,
    InfoNCEEstimator,
    MINEEstimator,
    NeuralTrace,
    NWJEstimator,
    SMILEEstimator,
    _Objective,
    bound_value,
    neural_mutual_information,
)
from lit_infobottleneck.estimators.registry import available_estimators, get_estimator
from tests.conftest import gaussian_mi, gaussian_pair

# Small critics and few steps: each training run takes well under a second on one CPU core.
FAST = {
    "critic": "concat",
    "hidden_dim": 32,
    "batch_size": 64,
    "max_steps": 400,
    "eval_every": 25,
    "patience": 5,
    "lr": 3e-3,
}

# Lower bounds: the estimate may fall short of the truth (critic capacity, steps, InfoNCE's
# log k bias) but should not exceed it by more than the held-out sampling noise plus the
# optimism of keeping the best of several evaluations (~0.03-0.04 nats for 600-900 held-out
# samples). Measured errors are within [-0.11, +0.03] nats for these seeds.
TOL_BELOW = 0.15
TOL_ABOVE = 0.08


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The critics are tiny; with several test processes sharing the CPU, intra-op threads
    only add synchronisation stalls. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


correlated_gaussians = gaussian_pair


# --- the bound formulas on fixed score matrices -------------------------------------------


def test_bound_formulas_match_explicit_sums():
    s = torch.tensor([[2.0, -1.0, 7.0], [0.5, 1.5, -6.0], [3.0, 0.0, 1.0]], dtype=torch.float64)
    k = 3
    joint = sum(s[i, i].item() for i in range(k)) / k
    off = [s[i, j].item() for i in range(k) for j in range(k) if i != j]
    infonce = (
        math.log(k)
        + sum(
            s[i, i].item() - math.log(sum(math.exp(s[i, j].item()) for j in range(k)))
            for i in range(k)
        )
        / k
    )
    mine = joint - math.log(sum(math.exp(v) for v in off) / len(off))
    nwj = joint - sum(math.exp(v - 1) for v in off) / len(off)
    tau = 2.0
    smile = joint - math.log(sum(math.exp(min(max(v, -tau), tau)) for v in off) / len(off))
    assert bound_value(s, "infonce").item() == pytest.approx(infonce, abs=1e-12)
    assert bound_value(s, "mine").item() == pytest.approx(mine, abs=1e-12)
    assert bound_value(s, "nwj").item() == pytest.approx(nwj, abs=1e-12)
    assert bound_value(s, "smile", tau=tau).item() == pytest.approx(smile, abs=1e-12)
    assert bound_value(s, "smile", tau=100.0).item() == pytest.approx(mine, abs=1e-12)


def test_bounds_with_the_optimal_critic_recover_gaussian_mi():
    """f = log p(y|x)/p(y) (+1 for NWJ) makes every bound tight up to sampling noise."""
    rho, d, k = 0.8, 2, 1000
    x, y = correlated_gaussians(k, d, rho, seed=0)
    diff = y[None, :, :] - rho * x[:, None, :]
    var = 1 - rho**2  # S[i, j] = log p(y_j | x_i) - log p(y_j), summed over dimensions
    log_ratio = (-0.5 * math.log(var) - diff**2 / (2 * var) + y[None] ** 2 / 2).sum(-1)
    truth = gaussian_mi(d, rho)
    for bound in BOUNDS:
        shift = 1.0 if bound == "nwj" else 0.0
        assert bound_value(log_ratio + shift, bound).item() == pytest.approx(truth, abs=0.05)


def test_mine_gradient_uses_moving_average_denominator():
    s1 = torch.tensor([[1.0, 0.2, -0.3], [0.4, 2.0, 0.1], [-1.0, 0.3, 0.5]], requires_grad=True)
    s2 = (2 * s1.detach()).requires_grad_()
    objective = _Objective("mine", tau=5.0)
    # First step: the average is the batch value itself, so the gradient is the DV gradient.
    objective(s1)[0].backward()
    s1_copy = s1.detach().clone().requires_grad_()
    (dv_grad,) = torch.autograd.grad(bound_value(s1_copy, "mine"), s1_copy)
    torch.testing.assert_close(s1.grad, dv_grad.float())
    # Second step: grad = E_P[grad f] - E_Q[e^f grad f] / ema, ema = 0.99 m1 + 0.01 m2.
    objective(s2)[0].backward()
    off = ~torch.eye(3, dtype=torch.bool)
    m1 = s1.detach()[off].exp().mean()
    m2 = s2.detach()[off].exp().mean()
    ema = 0.99 * m1 + 0.01 * m2
    expected = torch.where(off, -s2.detach().exp() / (6 * ema), torch.full((3, 3), 1 / 3))
    torch.testing.assert_close(s2.grad, expected)


def test_smile_trains_with_the_jensen_shannon_objective():
    s = torch.tensor([[1.0, 7.0], [-6.0, 0.5]], requires_grad=True)
    surrogate, value = _Objective("smile", tau=5.0)(s)
    surrogate.backward()
    sd = s.detach()
    expected_grad = torch.tensor(
        [
            [torch.sigmoid(-sd[0, 0]) / 2, -torch.sigmoid(sd[0, 1]) / 2],
            [-torch.sigmoid(sd[1, 0]) / 2, torch.sigmoid(-sd[1, 1]) / 2],
        ]
    )
    torch.testing.assert_close(s.grad, expected_grad)
    assert value.item() == pytest.approx(bound_value(sd, "smile", tau=5.0).item())


# --- trained critics against analytic mutual information ----------------------------------


@pytest.mark.parametrize("bound", BOUNDS)
@pytest.mark.parametrize(("d", "n"), [(1, 2000), (2, 3000)])
def test_correlated_gaussians(bound, d, n):
    rho = 0.8
    x, y = correlated_gaussians(n, d, rho, seed=10 + d)
    truth = gaussian_mi(d, rho)  # 0.511 (d=1), 1.022 (d=2) nats
    estimate = neural_mutual_information(x, y, bound=bound, **FAST)
    assert estimate.dtype == torch.float64 and estimate.shape == ()
    assert truth - TOL_BELOW < estimate.item() < truth + TOL_ABOVE


@pytest.mark.parametrize("bound", BOUNDS)
def test_default_separable_critic_on_correlated_gaussians(bound):
    x, y = correlated_gaussians(3000, 2, 0.8, seed=12)
    estimate = neural_mutual_information(x, y, bound=bound, max_steps=600, lr=3e-3)
    assert gaussian_mi(2, 0.8) - TOL_BELOW < estimate.item() < gaussian_mi(2, 0.8) + TOL_ABOVE


@pytest.mark.parametrize("bound", BOUNDS)
def test_independent_variables_give_zero(bound):
    x, _ = correlated_gaussians(2000, 2, 0.0, seed=1)
    _, y = correlated_gaussians(2000, 2, 0.0, seed=2)
    estimate = neural_mutual_information(x, y, bound=bound, **FAST)
    assert abs(estimate.item()) < 0.05


def test_infonce_saturates_at_log_batch_size():
    """y = x has infinite MI; InfoNCE reports at most log(batch_size) = log 64 = 4.159."""
    x, _ = correlated_gaussians(1000, 5, 0.0, seed=3)
    estimate, trace = neural_mutual_information(x, x.clone(), return_trace=True, **FAST)
    ceiling = math.log(FAST["batch_size"])
    assert estimate.item() <= ceiling + 1e-9
    assert max(trace.train_bound) <= ceiling + 1e-9
    assert estimate.item() > ceiling - 0.1


def test_infonce_ceiling_is_the_held_out_size_when_smaller_than_the_batch():
    x, _ = correlated_gaussians(100, 5, 0.0, seed=4)  # 30 held-out samples < batch_size 64
    estimate = neural_mutual_information(x, x.clone(), **FAST)
    assert math.log(30) - 0.5 < estimate.item() <= math.log(30) + 1e-9


@pytest.mark.parametrize("bound", BOUNDS)
def test_discrete_labels(bound):
    """y uniform on {0, 1}, x = y + N(0, 0.1^2): the classes do not overlap, I = log 2."""
    g = torch.Generator().manual_seed(5)
    y = torch.randint(0, 2, (2000,), generator=g)
    x = y[:, None].double() + 0.1 * torch.randn(2000, 1, generator=g, dtype=torch.float64)
    estimate = neural_mutual_information(x, y, bound=bound, **FAST)
    assert estimate.item() == pytest.approx(math.log(2), abs=0.05)


def test_discrete_y_flag_and_numpy_input():
    g = torch.Generator().manual_seed(6)
    y = torch.randint(0, 3, (600,), generator=g)
    x = y[:, None].double() + 0.1 * torch.randn(600, 2, generator=g, dtype=torch.float64)
    fast = {**FAST, "max_steps": 100}
    as_labels = neural_mutual_information(x, y, **fast)
    # Relabelled numpy labels give the same one-hot codes, hence the same estimate.
    flagged = neural_mutual_information(x.numpy(), y.numpy() + 5, discrete_y=True, **fast)
    assert torch.equal(as_labels, flagged)
    assert 0.8 < as_labels.item() <= math.log(3) + 0.05
    continuous = neural_mutual_information(x, y, discrete_y=False, **fast)
    assert not torch.equal(continuous, as_labels)


# --- protocol: determinism, trace, RNG hygiene ---------------------------------------------


def test_same_seed_same_result_and_global_rng_untouched():
    x, y = correlated_gaussians(500, 2, 0.8, seed=7)
    fast = {**FAST, "max_steps": 100}
    rng_state = torch.random.get_rng_state()
    first = neural_mutual_information(x, y, bound="nwj", seed=3, **fast)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert torch.equal(first, neural_mutual_information(x, y, bound="nwj", seed=3, **fast))
    assert not torch.equal(first, neural_mutual_information(x, y, bound="nwj", seed=4, **fast))


def test_trace_records_the_best_held_out_value():
    x, y = correlated_gaussians(2000, 1, 0.8, seed=8)
    estimate, trace = neural_mutual_information(
        x, y, bound="mine", return_trace=True, **{**FAST, "max_steps": 2000}
    )
    assert isinstance(trace, NeuralTrace)
    assert len(trace.steps) == len(trace.train_bound) == len(trace.held_out_bound)
    assert all(s % FAST["eval_every"] == 0 for s in trace.steps)
    assert estimate.item() == max(trace.held_out_bound)
    assert trace.held_out_bound[trace.steps.index(trace.best_step)] == estimate.item()
    # Early stopping: the run ends `patience` evaluations after the best one.
    assert trace.steps[-1] < 2000
    assert trace.steps[-1] - trace.best_step == FAST["patience"] * FAST["eval_every"]


def test_last_step_is_always_evaluated():
    x, y = correlated_gaussians(200, 1, 0.8, seed=9)
    _, trace = neural_mutual_information(
        x, y, return_trace=True, **{**FAST, "max_steps": 60, "eval_every": 25}
    )
    assert trace.steps == [25, 50, 60]


def test_input_requiring_grad_is_detached():
    x, y = correlated_gaussians(200, 1, 0.8, seed=9)
    x.requires_grad_()
    estimate = neural_mutual_information(x * 2, y, **{**FAST, "max_steps": 30})
    assert not estimate.requires_grad and x.grad is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_device_of_x():
    x, y = correlated_gaussians(300, 1, 0.8, seed=9)
    estimate = neural_mutual_information(x.cuda(), y, **{**FAST, "max_steps": 30})
    assert estimate.device.type == "cuda"


# --- registered estimators --------------------------------------------------------------


def test_registered_estimators():
    assert {"infonce", "mine", "nwj", "smile"} <= set(available_estimators())
    classes = {
        "infonce": InfoNCEEstimator,
        "mine": MINEEstimator,
        "nwj": NWJEstimator,
        "smile": SMILEEstimator,
    }
    for name, cls in classes.items():
        estimator = get_estimator(name, batch_size=32)
        assert type(estimator) is cls
        params = estimator.params()
        assert params["batch_size"] == 32 and estimator.bound == name
        assert get_estimator(name, **params).params() == params
        assert {
            "critic",
            "hidden_dim",
            "num_layers",
            "max_steps",
            "lr",
            "val_fraction",
            "seed",
        } <= set(params)
        assert ("tau" in params) == (name == "smile")
    assert get_estimator("smile", tau=3.0).params()["tau"] == 3.0


def test_one_frozen_settings_dataclass_serves_the_function_and_the_estimators():
    import dataclasses

    from lit_infobottleneck.estimators.neural import CriticSettings

    defaults = dataclasses.asdict(CriticSettings())
    for name in ("infonce", "mine", "nwj", "smile"):
        estimator = get_estimator(name, hidden_dim=16, lr=3e-3)
        extra = {"tau": 5.0} if name == "smile" else {}
        assert estimator.params() == {**defaults, "hidden_dim": 16, "lr": 3e-3, **extra}
        assert isinstance(estimator, CriticSettings)
        assert get_estimator(name, **estimator.params()) == estimator
        assert estimator != get_estimator(name, hidden_dim=17, lr=3e-3)
    settings = CriticSettings(batch_size=32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.batch_size = 64  # type: ignore[misc]
    with pytest.raises(ValueError, match="`patience` must be an integer >= 1"):
        CriticSettings(patience=0)
    with pytest.raises(TypeError, match="hidden_dims"):
        neural_mutual_information(*correlated_gaussians(50, 1, 0.5), hidden_dims=8)


def test_estimator_matches_functional():
    g = torch.Generator().manual_seed(11)
    labels = torch.randint(0, 2, (400,), generator=g)
    t = labels[:, None].double() + 0.1 * torch.randn(400, 3, generator=g, dtype=torch.float64)
    fast = {**FAST, "max_steps": 50}
    estimator = SMILEEstimator(tau=2.0, **fast)
    expected = neural_mutual_information(t, labels, bound="smile", tau=2.0, **fast)
    assert torch.equal(estimator.label_information(t, labels), expected)
    assert repr(estimator).startswith("SMILEEstimator(critic='concat'")
    assert "tau=2.0" in repr(estimator)


# --- bad input ----------------------------------------------------------------------------


def test_too_few_samples_for_the_split():
    x, y = correlated_gaussians(10, 1, 0.5, seed=0)
    with pytest.raises(ValueError, match=r"`x` has 10 samples.*at least 12 samples"):
        neural_mutual_information(x, y)
    neural_mutual_information(*correlated_gaussians(12, 1, 0.5, seed=0), max_steps=1)


def test_unknown_bound_lists_choices():
    x, y = correlated_gaussians(50, 1, 0.5, seed=0)
    with pytest.raises(ValueError, match="choose one of: infonce, mine, nwj, smile"):
        neural_mutual_information(x, y, bound="dv")
    with pytest.raises(ValueError, match="choose one of: concat, separable"):
        neural_mutual_information(x, y, critic="bilinear")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"batch_size": 1}, "batch_size"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"tau": 0.0}, "tau"),
        ({"max_steps": 0}, "max_steps"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"activation": "swish"}, "activation"),
    ],
)
def test_bad_parameters(params, name):
    x, y = correlated_gaussians(50, 1, 0.5, seed=0)
    with pytest.raises(ValueError, match=f"`{name}`"):
        neural_mutual_information(x, y, **params)


def test_bad_parameters_in_estimators():
    with pytest.raises(ValueError, match="`tau`"):
        SMILEEstimator(tau=-1.0)
    with pytest.raises(ValueError, match="`batch_size`"):
        get_estimator("infonce", batch_size=1)
    with pytest.raises(ValueError, match="`val_fraction`"):
        NWJEstimator(val_fraction=1.0)


def test_bad_samples():
    x, y = correlated_gaussians(50, 1, 0.5, seed=0)
    with pytest.raises(ValueError, match="`x` has 50 samples but `y` has 49"):
        neural_mutual_information(x, y[:49])
    x_nan = x.clone()
    x_nan[3, 0] = float("nan")
    with pytest.raises(ValueError, match="`x` contains 1 NaN"):
        neural_mutual_information(x_nan, y)
    with pytest.raises(ValueError, match="labels must be integers"):
        neural_mutual_information(x, y[:, 0], discrete_y=True)
    with pytest.raises(ValueError, match=r"`y` must be a torch\.Tensor or a numpy array"):
        neural_mutual_information(x, [1.0] * 50)
    with pytest.raises(ValueError, match="`scores` must be a square"):
        bound_value(torch.zeros(3, 2), "infonce")
    assert np.isfinite(neural_mutual_information(x, y, max_steps=1).item())


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_estimates_inside_a_validation_loop_equal_those_outside(mode):
    """Lightning validates in inference mode, where InfoMetrics calls the estimators: the
    critic must still train (with autograd on) and give the same number."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=gen)
    t = x + 0.3 * torch.randn(300, 3, generator=gen)
    y = torch.randint(0, 4, (300,), generator=gen)
    estimator = get_estimator("infonce", max_steps=40, eval_every=10)
    expected = estimator.layer_information(x, t, y)
    with getattr(torch, mode)():
        x_in, t_in, y_in = x.clone(), t.clone(), y.clone()  # inference tensors in that mode
        got = estimator.layer_information(x_in, t_in, y_in)
    assert float(expected[0]) > 0.5  # the critic learned something
    for a, b in zip(got, expected, strict=True):
        assert float(a) == pytest.approx(float(b), abs=1e-12)
