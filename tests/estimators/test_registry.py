import math

import pytest
import torch

from lit_infobottleneck.estimators import Estimator, available_estimators, get_estimator

CORE = ["binning", "gaussian", "hsic", "kde", "ksg", "noisy", "renyi"]
#: Estimators whose I(X;T) treats each distinct input as its own value (I(X;T) <= log n).
IDENTITY_X = {"binning", "kde", "noisy"}


def test_core_families_are_registered():
    assert set(CORE) <= set(available_estimators())
    for name in available_estimators():
        est = get_estimator(name)
        assert isinstance(est, Estimator) and est.name == name
        assert repr(est).startswith(type(est).__name__ + "(")
        assert isinstance(est.params(), dict)


def test_unknown_name_and_parameter_list_the_choices():
    with pytest.raises(ValueError, match=r"unknown estimator 'kgs'; available estimators: .*ksg"):
        get_estimator("kgs")
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) \['neighbours'\]; accepted: .*'k'"
    ):
        get_estimator("ksg", neighbours=5)


def test_parameters_reach_the_estimator():
    assert get_estimator("ksg", k=7).params()["k"] == 7
    assert get_estimator("binning", bins=12).params()["bins"] == 12
    assert get_estimator("kde", noise_var=0.5).params()["noise_var"] == 0.5


@pytest.mark.parametrize("name", CORE)
def test_results_are_0d_float64_nats_on_the_input_device(name):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=gen)
    t = torch.tanh(x @ torch.randn(4, 3, generator=gen))
    y = (x[:, 0] > 0).long()
    est = get_estimator(name)
    for value in (est.input_information(x, t), est.label_information(t, y)):
        assert value.dim() == 0 and value.dtype == torch.float64 and value.device == x.device
        assert math.isfinite(float(value))
    assert float(est.label_information(t, y)) <= math.log(2) + 0.1


@pytest.mark.parametrize("name", CORE)
def test_bad_input_names_the_argument(name):
    est = get_estimator(name)
    x, labels = torch.randn(20, 3), torch.arange(20) % 2
    with pytest.raises(ValueError, match="has 20 samples but `y` has 19"):
        est.label_information(x, labels[:19])
    with pytest.raises(ValueError, match="NaN/Inf"):
        est.label_information(torch.full((20, 3), float("inf")), labels)
    with pytest.raises(ValueError, match="empty"):
        est.label_information(torch.zeros(0, 3), labels[:0])
    with pytest.raises(ValueError, match=r"must be a torch\.Tensor or a numpy array"):
        est.label_information([[1.0]] * 20, labels)


@pytest.mark.parametrize("name", CORE)
def test_leading_shapes_are_flattened_per_sample(name):
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(64, 2, 3, 3, generator=gen)
    labels = torch.arange(64) % 2  # 32 per class: more than the 18 dims (Gaussian needs it)
    est = get_estimator(name)
    flat = est.label_information(images.reshape(64, -1), labels)
    assert float(est.label_information(images, labels)) == pytest.approx(float(flat), abs=1e-12)


def test_params_rebuild_an_equal_estimator():
    assert {"infonce", "mine", "nwj", "smile"} <= set(available_estimators())
    for name in available_estimators():
        params = get_estimator(name).params()
        rebuilt = get_estimator(name, **params)
        assert rebuilt.params() == params and rebuilt.unit == get_estimator(name).unit
    assert get_estimator("hsic").unit == "nHSIC"
    assert {get_estimator(n).unit for n in available_estimators() if n != "hsic"} == {"nats"}


@pytest.mark.parametrize("name", CORE)
def test_layer_information_equals_the_two_separate_calls(name):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(150, 5, generator=gen)
    t = torch.tanh(x @ torch.randn(5, 7, generator=gen))
    y = torch.randint(0, 3, (150,), generator=gen)
    est = get_estimator(name)
    ixt, ity = est.layer_information(x, t, y)
    assert float(ixt) == pytest.approx(float(est.input_information(x, t)), abs=1e-12)
    assert float(ity) == pytest.approx(float(est.label_information(t, y)), abs=1e-12)


def test_calibration_api_of_every_estimator():
    gen = torch.Generator().manual_seed(4)
    t = torch.relu(torch.randn(80, 6, generator=gen, dtype=torch.float64))
    auto = {"kde": {"noise_var": "auto"}, "binning": {"value_range": "auto"}, "noisy": {}}
    for name in available_estimators():
        est = get_estimator(name)
        assert type(est).treats_x_by_identity is (name in IDENTITY_X)
        rebuilt = est.with_params()
        assert type(rebuilt) is type(est) and rebuilt.params() == est.params()
        if name not in auto:
            assert est.calibration(t) == {}
            continue
        calibrated = get_estimator(name, **auto[name])
        values = calibrated.calibration(t)
        assert values and set(values) <= set(calibrated.params())
        frozen = calibrated.with_params(**values)
        assert frozen.calibration(t) == {}
        assert {k: frozen.params()[k] for k in values} == values
        assert all(v == "auto" for k, v in calibrated.params().items() if k in values)
