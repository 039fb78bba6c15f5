"""Entropy and mutual-information estimators on torch tensors (nats, float64, any device).

One module per family; every estimator is also reachable by name through
:func:`get_estimator` (``available_estimators()`` lists the names).
"""

from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.gaussian import (
    GaussianEstimator,
    gaussian_entropy,
    gaussian_mutual_information,
)
from lit_infobottleneck.estimators.registry import available_estimators, get_estimator

__all__ = [
    "Estimator",
    "GaussianEstimator",
    "available_estimators",
    "gaussian_entropy",
    "gaussian_mutual_information",
    "get_estimator",
]
