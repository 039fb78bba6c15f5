"""Entropy and mutual-information estimators on torch tensors (nats, float64, any device).

One module per family; every estimator is also reachable by name through
``get_estimator`` (``available_estimators()`` lists the names).
"""

from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.binning import (
    BinningEstimator,
    binning_entropy,
    binning_mutual_information,
    discrete_mutual_information,
    discretize,
    out_of_range_fraction,
    plugin_entropy,
)
from lit_infobottleneck.estimators.gaussian import (
    GaussianEstimator,
    gaussian_entropy,
    gaussian_mutual_information,
)
from lit_infobottleneck.estimators.hsic import HSICEstimator, hsic, normalized_hsic
from lit_infobottleneck.estimators.kde import (
    KDEEstimator,
    auto_noise_var,
    kde_entropy,
    kde_mutual_information,
)
from lit_infobottleneck.estimators.knn import KSGEstimator, kl_entropy, ksg_mutual_information
from lit_infobottleneck.estimators.neural import (
    InfoNCEEstimator,
    MINEEstimator,
    NeuralTrace,
    NWJEstimator,
    SMILEEstimator,
    neural_mutual_information,
)
from lit_infobottleneck.estimators.noisy import (
    NoisyEstimator,
    noisy_entropy,
    noisy_mutual_information,
)
from lit_infobottleneck.estimators.registry import available_estimators, get_estimator
from lit_infobottleneck.estimators.renyi import (
    RenyiEstimator,
    renyi_entropy,
    renyi_joint_entropy,
    renyi_mutual_information,
)

__all__ = [
    "BinningEstimator",
    "Estimator",
    "GaussianEstimator",
    "HSICEstimator",
    "InfoNCEEstimator",
    "KDEEstimator",
    "KSGEstimator",
    "MINEEstimator",
    "NWJEstimator",
    "NeuralTrace",
    "NoisyEstimator",
    "RenyiEstimator",
    "SMILEEstimator",
    "auto_noise_var",
    "available_estimators",
    "binning_entropy",
    "binning_mutual_information",
    "discrete_mutual_information",
    "discretize",
    "gaussian_entropy",
    "gaussian_mutual_information",
    "get_estimator",
    "hsic",
    "kde_entropy",
    "kde_mutual_information",
    "kl_entropy",
    "ksg_mutual_information",
    "neural_mutual_information",
    "noisy_entropy",
    "noisy_mutual_information",
    "normalized_hsic",
    "out_of_range_fraction",
    "plugin_entropy",
    "renyi_entropy",
    "renyi_joint_entropy",
    "renyi_mutual_information",
]
