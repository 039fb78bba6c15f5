"""The estimator interface shared by every family, so callbacks and configs can name them."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch


class Estimator(abc.ABC):
    """A mutual-information estimator with stated parameters.

    Subclasses implement :meth:`mutual_information`; results are 0-d float64 tensors in
    nats. :meth:`input_information` and :meth:`label_information` say how the family
    measures I(X;T) and I(T;Y) for a network layer T: the default treats X as continuous
    and Y as discrete class labels; families that treat X as discrete (one value per
    distinct input, e.g. binning and KDE) override :meth:`input_information`.
    """

    #: Registry name, e.g. ``"ksg"``.
    name: ClassVar[str]

    #: Unit of the values returned: ``"nats"`` for every mutual-information estimator; the
    #: HSIC family returns a unitless dependence score and says so here.
    unit: str = "nats"

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

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
