"""Information objectives: nn.Modules returning a dict of named loss terms (``"loss"`` first).

One objective per file; see each module's docstring for the bound it optimises.
"""

from lit_infobottleneck.objectives.base import ModelOutput, Objective, cross_entropy
from lit_infobottleneck.objectives.ceb import CEB
from lit_infobottleneck.objectives.cross_entropy import CrossEntropy
from lit_infobottleneck.objectives.hsic_bottleneck import HSICBottleneck
from lit_infobottleneck.objectives.info_objective import (
    InfoObjective,
    gaussian_class_conditional_entropy,
)
from lit_infobottleneck.objectives.nonlinear_ib import NonlinearIB
from lit_infobottleneck.objectives.vib import VIB

__all__ = [
    "CEB",
    "VIB",
    "CrossEntropy",
    "HSICBottleneck",
    "InfoObjective",
    "ModelOutput",
    "NonlinearIB",
    "Objective",
    "cross_entropy",
    "gaussian_class_conditional_entropy",
]
