"""k-nearest-neighbour estimators: Kozachenko-Leonenko entropy, KSG and Ross MI.

- ``kl_entropy``: Kozachenko & Leonenko (1987) differential entropy,
  ``H = psi(n) - psi(k) + log V_d + d <log eps_i>`` with ``eps_i`` the distance to the k-th
  neighbour and ``V_d`` the volume of the unit ball of the metric.
- ``ksg_mutual_information``, continuous ``y``: KSG algorithm 1 (Kraskov, Stoegbauer &
  Grassberger 2004), ``I = psi(k) + psi(n) - <psi(n_x + 1) + psi(n_y + 1)>``, where ``eps_i``
  is the distance to the k-th neighbour in the joint space under the max of the two marginal
  distances and ``n_x``, ``n_y`` count the points strictly closer than ``eps_i`` in each
  marginal space. ``metric="max"`` (the default, as in the paper, scikit-learn and NPEET)
  uses the max-norm in each marginal; ``metric="euclidean"`` uses the L2 norm in each
  marginal (KSG allows any norm there), which turns the distance work into matrix products.
- discrete ``y`` (class labels): Ross (2014), ``I = psi(N) + <psi(k)> - <psi(N_y)> - <psi(m)>``,
  with the k-th neighbour searched within the point's class and ``m`` the number of points of
  any class within that distance (``metric=None`` means Euclidean here, as scikit-learn's
  ``mutual_info_classif``). Points whose class has a single sample are left out, and ``k``
  drops to ``N_y - 1`` for classes smaller than ``k + 1`` (as scikit-learn).

Free parameter: ``k`` (default 3). Preprocessing: each column of ``x`` and ``y`` is divided
by its standard deviation (``standardize=True``; makes the estimate invariant to per-column
scale, as scikit-learn; columns are centred in any case), then a seeded jitter of ``jitter``
(default 1e-10) times the column's scale is added to break ties: dead ReLUs and duplicated
samples produce many. Constant columns carry no information; duplicated samples then sit at
distance ~1e-10, so the estimates stay finite. The raw estimates are returned, not clipped:
KSG can be slightly negative for independent variables.

All distance work is done in row blocks by ``._pairwise`` (extra memory O(n * chunk)).
On CPU, for max-norm KSG with at most ``tree_max_dims`` joint dimensions, ``backend="auto"``
uses scipy's cKDTree instead (same result; trees win in low dimensions).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lit_infobottleneck.estimators._pairwise import check_metric, distance_blocks
from lit_infobottleneck.estimators._validation import (
    as_labels,
    as_samples,
    as_tensor,
    check_bool,
    check_int_at_least,
    check_positive,
    check_same_length,
    resolve_discrete,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.registry import register

BACKENDS = ("auto", "brute", "tree")
#: Marginal norms of KSG (``None``: max-norm for KSG, Euclidean for Ross).
KSG_METRICS = ("max", "euclidean")
_FEW_SAMPLES_HINT = "pass more samples or lower `k`"


def prepare_samples(
    x: torch.Tensor, *, standardize: bool, jitter: float, seed: int
) -> torch.Tensor:
    """Centre and standardise (optional) columns, add seeded tie-breaking jitter; a copy.

    Columns are centred first (k-NN distances do not change under translation): a column
    with a large offset, e.g. ``1e6 + 1e-6 z``, would otherwise swallow the jitter in float
    round-off and leave duplicated rows tied. The jitter of a column is
    ``jitter * scale * N(0, 1)`` with ``scale`` its standard deviation, or 1 for a constant
    column.
    """
    std = x.std(dim=0) if x.shape[0] > 1 else torch.zeros_like(x[0])
    nonconstant = std > 0
    x = x - x.mean(dim=0)
    if standardize:
        x = x / torch.where(nonconstant, std, torch.ones_like(std))
        std = torch.where(nonconstant, torch.ones_like(std), std)
    if jitter > 0:
        scale = torch.where(nonconstant, std, torch.ones_like(std))
        gen = torch.Generator(device=x.device).manual_seed(seed)
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        x = x + jitter * scale * noise
    return x


def _log_unit_ball_volume(d: int, metric: str) -> float:
    if metric == "max":
        return d * math.log(2.0)
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def _digamma(values: torch.Tensor) -> torch.Tensor:
    return torch.special.digamma(values.to(torch.float64))


def _digamma_of(value: float) -> float:
    return float(torch.special.digamma(torch.tensor(float(value), dtype=torch.float64)))


def kth_neighbor_distances(
    x: torch.Tensor, k: int, metric: str, chunk_size: int | None = None
) -> torch.Tensor:
    """Distance from each row of ``x`` ``(n, d)`` to its k-th nearest other row: ``(n,)``."""
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for rows, block in distance_blocks(x, metric=metric, chunk_size=chunk_size, exclude_self=True):
        out[rows] = block.topk(k, dim=1, largest=False).values[:, -1]
    return out


def kl_entropy(
    x: torch.Tensor,
    *,
    k: int = 3,
    metric: str = "euclidean",
    jitter: float = 1e-10,
    seed: int = 0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Kozachenko-Leonenko differential entropy of ``x`` ``(n, d)`` in nats (0-d float64).

    No standardisation (entropy depends on scale). Duplicated samples are separated by the
    jitter only, so their contribution is large and negative (the differential entropy of a
    discrete distribution is -inf); with ``jitter=0`` zero distances are clamped to the
    smallest positive float, keeping the result finite.
    """
    check_int_at_least(k, "k", 1)
    check_int_at_least(seed, "seed", 0)
    check_metric(metric)
    if metric == "sqeuclidean":
        raise ValueError("`metric` for kl_entropy must be 'max' or 'euclidean'.")
    x = as_samples(x, "x", min_samples=k + 1, hint=_FEW_SAMPLES_HINT)
    x = prepare_samples(x, standardize=False, jitter=jitter, seed=seed)
    n, d = x.shape
    eps = kth_neighbor_distances(x, k, metric, chunk_size)
    log_eps = eps.clamp(min=torch.finfo(torch.float64).tiny).log()
    return _digamma_of(n) - _digamma_of(k) + _log_unit_ball_volume(d, metric) + d * log_eps.mean()


def _ksg_counts_brute(
    x: torch.Tensor, y: torch.Tensor, k: int, metric: str, chunk_size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point marginal neighbour counts (n_x, n_y) of KSG algorithm 1, in row blocks."""
    n = x.shape[0]
    n_x = torch.empty(n, dtype=torch.int64, device=x.device)
    n_y = torch.empty_like(n_x)
    blocks_x = distance_blocks(x, metric=metric, chunk_size=chunk_size, exclude_self=True)
    blocks_y = distance_blocks(y, metric=metric, chunk_size=chunk_size, exclude_self=True)
    for (rows, dx), (_, dy) in zip(blocks_x, blocks_y, strict=True):
        eps = torch.maximum(dx, dy).topk(k, dim=1, largest=False).values[:, -1:]
        n_x[rows] = (dx < eps).sum(dim=1)
        n_y[rows] = (dy < eps).sum(dim=1)
    return n_x, n_y


def _ksg_counts_tree(x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same counts with scipy's cKDTree (max-norm, CPU); fastest in low dimensions."""
    import numpy as np
    from scipy.spatial import cKDTree

    xn, yn = x.numpy(), y.numpy()
    joint = np.hstack([xn, yn])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf, workers=-1)[0][:, -1]
    radius = np.nextafter(eps, 0)
    counts = []
    for z in (xn, yn):
        found = cKDTree(z).query_ball_point(z, radius, p=np.inf, return_length=True, workers=-1)
        counts.append(torch.from_numpy(np.asarray(found, dtype=np.int64) - 1))
    return counts[0], counts[1]


def _ross_terms(
    x: torch.Tensor, labels: torch.Tensor, k: int, metric: str, chunk_size: int | None
) -> torch.Tensor:
    """Ross (2014) MI between continuous ``x`` and class codes ``labels`` (both on one device)."""
    class_sizes = torch.bincount(labels)
    keep = class_sizes[labels] > 1
    if int(keep.sum()) < 2:
        raise ValueError(
            "`y` has no class with at least 2 samples; the Ross estimator needs repeated labels."
        )
    x, labels = x[keep], labels[keep]
    n_per_point = class_sizes[labels]
    k_per_point = torch.clamp(n_per_point - 1, max=k)
    k_max = int(k_per_point.max())
    m = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    for rows, block in distance_blocks(x, metric=metric, chunk_size=chunk_size, exclude_self=True):
        other_class = labels[rows, None] != labels[None, :]
        nearest = block.masked_fill(other_class, float("inf")).topk(k_max, dim=1, largest=False)
        radius = nearest.values.gather(1, (k_per_point[rows] - 1)[:, None])
        m[rows] = (block < radius).sum(dim=1) + 1
    n = x.shape[0]
    return (
        _digamma_of(n)
        + _digamma(k_per_point).mean()
        - _digamma(n_per_point).mean()
        - _digamma(m).mean()
    )


def ksg_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int = 3,
    metric: str | None = None,
    discrete_y: bool | None = None,
    standardize: bool = True,
    jitter: float = 1e-10,
    seed: int = 0,
    backend: str = "auto",
    tree_max_dims: int = 16,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """I(X;Y) in nats (0-d float64) by KSG algorithm 1, or by Ross (2014) for labels ``y``.

    Args:
        x: ``(n, ...)`` continuous samples.
        y: ``(n, ...)`` continuous samples, or ``(n,)`` integer class labels
            (``discrete_y=None`` decides by dtype).
        k: neighbour count (needs ``n > k``).
        metric: ``"max"`` or ``"euclidean"`` marginal norm; ``None`` is ``"max"`` for KSG
            and ``"euclidean"`` for Ross.
        discrete_y: treat ``y`` as class labels; ``None`` decides by dtype.
        standardize: divide each column by its standard deviation (see the module docstring).
        jitter: tie-breaking noise, times each column's scale (see the module docstring).
        seed: seed of the jitter.
        backend: ``"brute"`` (chunked torch, any device), ``"tree"`` (scipy cKDTree, CPU,
            max-norm) or ``"auto"`` (tree on CPU for at most ``tree_max_dims`` joint dims).
        tree_max_dims: the largest joint dimension for which ``"auto"`` uses the tree.
        chunk_size: rows per distance block (default: a 32 MiB block).
    """
    check_int_at_least(k, "k", 1)
    check_positive(jitter, "jitter", allow_zero=True)
    check_int_at_least(seed, "seed", 0)
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    x = as_samples(x, "x", min_samples=k + 1, hint=_FEW_SAMPLES_HINT)
    y_raw = as_tensor(y, "y")
    if resolve_discrete(y_raw, discrete_y):
        labels = as_labels(y_raw, "y").to(x.device)
        check_same_length(x, labels, "x", "y")
        metric = check_metric(metric or "euclidean")
        x = prepare_samples(x, standardize=standardize, jitter=jitter, seed=seed)
        return _ross_terms(x, labels, k, metric, chunk_size)

    y = as_samples(y_raw, "y", min_samples=k + 1, hint=_FEW_SAMPLES_HINT).to(x.device)
    check_same_length(x, y, "x", "y")
    metric = check_metric(metric or "max")
    if metric == "sqeuclidean":
        raise ValueError("`metric` for KSG must be 'max' or 'euclidean'.")
    x = prepare_samples(x, standardize=standardize, jitter=jitter, seed=seed)
    y = prepare_samples(y, standardize=standardize, jitter=jitter, seed=seed + 1)
    use_tree = backend == "tree" or (
        backend == "auto"
        and x.device.type == "cpu"
        and metric == "max"
        and x.shape[1] + y.shape[1] <= tree_max_dims
    )
    if use_tree:
        if metric != "max":
            raise ValueError("`backend='tree'` supports only metric='max'; use backend='brute'.")
        n_x, n_y = _ksg_counts_tree(x.cpu(), y.cpu(), k)
    else:
        n_x, n_y = _ksg_counts_brute(x, y, k, metric, chunk_size)
    n_x, n_y = n_x.to(x.device), n_y.to(x.device)
    return _digamma_of(k) + _digamma_of(x.shape[0]) - (_digamma(n_x + 1) + _digamma(n_y + 1)).mean()


@register
class KSGEstimator(Estimator):
    """KSG (continuous y) / Ross (class labels) k-NN mutual information."""

    name = "ksg"

    def __init__(
        self,
        k: int = 3,
        metric: str | None = None,
        standardize: bool = True,
        jitter: float = 1e-10,
        seed: int = 0,
        backend: str = "auto",
    ) -> None:
        check_int_at_least(k, "k", 1)
        check_positive(jitter, "jitter", allow_zero=True)
        check_int_at_least(seed, "seed", 0)
        check_bool(standardize, "standardize")
        if metric is not None and metric not in KSG_METRICS:
            raise ValueError(
                f"`metric` must be one of {KSG_METRICS} (or None for the default), got {metric!r}."
            )
        if backend not in BACKENDS:
            raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
        self.k, self.metric, self.standardize = k, metric, standardize
        self.jitter, self.seed, self.backend = jitter, seed, backend

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        return ksg_mutual_information(
            x,
            y,
            k=self.k,
            metric=self.metric,
            discrete_y=discrete_y,
            standardize=self.standardize,
            jitter=self.jitter,
            seed=self.seed,
            backend=self.backend,
        )

    def params(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "metric": self.metric,
            "standardize": self.standardize,
            "jitter": self.jitter,
            "seed": self.seed,
            "backend": self.backend,
        }
