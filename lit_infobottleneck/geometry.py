"""Geometry of a layer's representation, beside its information: two cheap summaries.

Goldfeld et al. (2019, "Estimating information flow in deep neural networks") showed that
the "compression" a binned I(X;T) shows is the clustering of same-class representations. So
InfoMetrics logs, on the same samples as its estimates, what the clustering itself does:

- ``within_class_ratio``: ``tr(S_W) / tr(S_T)``, the within-class scatter over the total
  scatter (unitless, in [0, 1]). 1: the class means coincide (no class structure); 0: every
  sample sits on its class mean, the variability collapse "NC1" of Papyan, Han & Donoho
  (2020, "Prevalence of neural collapse during the terminal phase of deep learning
  training"). Falling over training = classes clustering.
- ``participation_ratio``: the effective dimension ``(sum_i l_i)^2 / sum_i l_i^2`` of the
  covariance spectrum ``l`` (Gao et al. 2017; Recanatesi et al. 2019), in [1, rank]:
  ``d`` for an isotropic cloud in ``d`` dimensions, ``k`` for one spread equally over ``k``.

Both in float64, memory O(n d), time O(n d min(n, d)) (no eigendecomposition: ``sum l`` is
the trace and ``sum l^2`` the squared Frobenius norm of the covariance, computed from the
smaller of the d x d covariance and the n x n Gram matrix). Rows are samples: ``t`` is
``(n, d)``, ``y`` ``(n,)`` class indices.
"""

from __future__ import annotations

import torch

#: The quantities ``layer_geometry`` returns, as logged under ``info/geometry/<name>``.
QUANTITIES = ("within_class_ratio", "effective_dim")


def _centred(t: torch.Tensor) -> torch.Tensor:
    if t.dim() != 2 or t.shape[0] < 2:
        raise ValueError(f"`t` must be (n >= 2, d) samples x features, got {tuple(t.shape)}.")
    t = t.detach().to(torch.float64)
    return t - t.mean(dim=0, keepdim=True)


def within_class_ratio(t: torch.Tensor, y: torch.Tensor) -> float | None:
    """``tr(S_W) / tr(S_T)`` of ``t`` ``(n, d)`` with classes ``y`` ``(n,)``; None for a
    constant layer (no scatter at all: the ratio is undefined)."""
    centred = _centred(t)
    if y.shape != (t.shape[0],):
        raise ValueError(f"`y` must be ({t.shape[0]},) class labels, got {tuple(y.shape)}.")
    total = float(centred.square().sum())
    if total <= 0.0:
        return None
    _, classes = torch.unique(y.to(centred.device), return_inverse=True)
    k = int(classes.max()) + 1
    sums = torch.zeros(k, centred.shape[1], dtype=torch.float64, device=centred.device)
    sums.index_add_(0, classes, centred)
    counts = torch.bincount(classes, minlength=k).to(torch.float64)
    between = float((sums.square().sum(dim=1) / counts).sum())  # sum_c n_c |mean_c - mean|^2
    return min(max((total - between) / total, 0.0), 1.0)


def participation_ratio(t: torch.Tensor) -> float | None:
    """Effective dimension of ``t`` ``(n, d)``: ``tr(C)^2 / ||C||_F^2`` of its covariance
    ``C``; None for a constant layer."""
    centred = _centred(t)
    n, d = centred.shape
    gram = centred.T @ centred if d <= n else centred @ centred.T  # same non-zero spectrum
    trace = float(torch.diagonal(gram).sum())
    squared = float(gram.square().sum())
    if trace <= 0.0 or squared <= 0.0:
        return None
    return trace * trace / squared


def layer_geometry(t: torch.Tensor, y: torch.Tensor) -> dict[str, float | None]:
    """``{"within_class_ratio": ..., "effective_dim": ...}`` of one layer (see above)."""
    return {
        "within_class_ratio": within_class_ratio(t, y),
        "effective_dim": participation_ratio(t),
    }
