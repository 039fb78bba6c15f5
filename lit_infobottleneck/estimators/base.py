"""The estimator interface shared by every family, so callbacks and configs can name them."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch


class Estimator(abc.ABC):
    """A mutual-information estimator with stated parameters.

    Subclasses implement ``mutual_information``; results are 0-d float64 tensors in
    nats. ``input_information`` and ``label_information`` say how the family
    measures I(X;T) and I(T;Y) for a network layer T: the default treats X as continuous
    and Y as discrete class labels; families that treat X as discrete (one value per
    distinct input, e.g. binning and KDE) override ``input_information``.

    Calibration: a family whose free parameter can be ``"auto"`` (``noise_var="auto"``,
    ``value_range="auto"``) chooses its value from a layer's activations with
    ``calibration``; ``estimator.with_params(**estimator.calibration(t))`` is then the
    same estimator with that value fixed, so that later epochs use it too (Geiger 2021: the
    information plane compares epochs only at a fixed parameter). An estimator called while
    a parameter is still ``"auto"`` calibrates on the data it is given, at every call.
    """

    #: Registry name, e.g. ``"ksg"``.
    name: ClassVar[str]

    #: Unit of the values returned: ``"nats"`` for every mutual-information estimator; the
    #: HSIC family returns a unitless dependence score and says so here.
    unit: str = "nats"

    #: True when ``input_information`` treats X by identity (each distinct input row is
    #: its own value, X uniform over them): then I(X;T) <= H(X) <= log n, and an estimate at
    #: that ceiling says that the estimator tells every sample apart (binning, kde, noisy).
    treats_x_by_identity: ClassVar[bool] = False

    @abc.abstractmethod
    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        """I(X;Y) in nats from paired samples ``x`` ``(n, ...)`` and ``y`` ``(n, ...)``.

        ``discrete_y=None`` treats an integer/bool ``y`` as class labels.
        """

    def input_information(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """I(X;T) in nats between network inputs ``x`` and a layer's activations ``t``."""
        return self.mutual_information(t, x, discrete_y=False)

    def label_information(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """I(T;Y) in nats between a layer's activations ``t`` and class labels ``y``."""
        return self.mutual_information(t, y, discrete_y=True)

    def layer_information(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(I(X;T), I(T;Y))`` of one layer; families that can share work override it."""
        return self.input_information(x, t), self.label_information(t, y)

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The free parameters that set what this estimator measures, for logging.

        ``get_estimator(self.name, **self.params())`` rebuilds an equal estimator.
        """

    def calibration(self, t: torch.Tensor) -> dict[str, Any]:
        """Values chosen for the automatic parameters on a layer's activations ``t`` ``(n, d)``.

        Plain Python floats (tuples of floats), safe for JSON and ``weights_only``
        checkpoints; ``{}`` when no parameter is automatic (the default). Raises
        ``ValueError`` when ``t`` cannot set a value (e.g. a constant layer).
        """
        return {}

    def with_params(self, **overrides: Any) -> Estimator:
        """A new estimator of this family with ``overrides`` replacing some ``params``."""
        from lit_infobottleneck.estimators.registry import get_estimator

        return get_estimator(self.name, **{**self.params(), **overrides})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
