"""Monte Carlo information of the noisy representation T + Z (Goldfeld et al. 2019).

The noisy-network view of Goldfeld et al. (2019, "Estimating information flow in deep neural
networks", ICML): a deterministic layer T = f(X) has infinite I(X;T) for continuous T, so
measure ``T + Z`` with ``Z ~ N(0, noise_var I)`` instead. Over the n measured samples, X is
uniform on the n inputs (each distinct input row is its own value, as for binning and KDE)
and ``T + Z`` is the Gaussian mixture ``p(s) = 1/n sum_j phi(s - t_j)``. This family
estimates the information of that mixture by Monte Carlo sample propagation: unbiased, not a
bound (unlike the pairwise-distance bounds of ``.kde``, which are loose in high
dimensions, where the distances concentrate).

With ``s = t_i + z``, ``z ~ N(0, noise_var I)`` drawn ``samples`` times per point, and the
log-density ratio ``e_ij = log phi(s - t_j) - log phi(z)
= -(||t_i - t_j||^2 + 2 z.(t_i - t_j)) / (2 noise_var)`` (``e_ii = 0``):

    I(C; T + Z) = E_{i,z}[ log (1/n_c(i) sum_{j in c(i)} e^{e_ij}) - log (1/n sum_j e^{e_ij}) ]

for any discrete C: the inputs by identity (then ``c(i) = {i}`` for distinct inputs and the
first term is 0: ``I(X;T+Z) = E[-log 1/n sum_j e^{e_ij}]``) or the class labels Y. This is
``E[log p(s|c) - log p(s)]`` over ``(s, c)`` drawn from their joint distribution, with exact
mixture densities; ``H(T+Z) - sum_c p(c) H(T+Z|C=c)`` with each conditional entropy
estimated on the draws from its own class's components is the same sum, term by term.
Subtracting ``log phi(z)`` exactly, instead of estimating the two entropies with their
``d/2 log(2 pi e noise_var)`` noise terms, removes the chi-square spread of ``||z||^2`` (a
standard deviation of sqrt(d/2) nats per draw, 16 in 512 dimensions, which would swamp the
signal). Repeated input rows form one value of X, as for KDE. Properties, by
construction: ``I(T+Z; C) <= H(C)`` (log n for distinct inputs), 0 for a constant layer,
unchanged by translating T; the distribution of the estimate (not each draw) is unchanged by
permuting the rows and rotating T. The mean of the per-point terms is unbiased; it is
clamped at 0, which acts only when the true value is within Monte Carlo error of 0.
``noisy_mutual_information`` can also return the Monte Carlo standard error, from the
spread of each point's ``samples`` draws (the estimate is conditional on the n samples: its
finite-n bias against the population value, where there is one, is a separate matter).

What it measures: how many inputs a noisy copy of the layer can still tell apart, at a
resolution set by the noise. With the relative noise of ``"auto"``, N(0, I_512) samples give
2.4 nats of I(X;T) at n = 1,000 (of log n = 6.9), 1,000 digits through a random 512-unit
ReLU layer 2.0 nats (KDE's bounds at the same noise: 1.2 and 3.8; KDE at the fixed 0.1:
6.9 = log n). Finite n: I(T+Z;Y) of the n-sample mixture is positive even for labels
independent of T (0.036 nats for 2 classes, 0.20 for 10, on N(0, I_512) at n = 1,000),
the plug-in bias of a mixture that resolves part of its samples; for a Gaussian layer
``T = A U`` the mixture's I(X;T+Z) is at most ``1/2 log det(I + A^T C A / noise_var)`` with
C the sample covariance (maximum entropy), 0.004 nats below it at n = 2,000 in 256
dimensions (tests/estimators/test_noisy.py).

Free parameters: ``noise_var`` (sigma^2 in the units of T squared), default ``"auto"``:
``AUTO_NOISE_FRACTION`` (0.1) times the median squared distance between samples, the rule
of ``.kde.auto_noise_var`` (why relative: see ``.kde``); ``samples`` (draws per
point, default 4); ``seed``. The noise is drawn on the CPU, each block of 64 rows by a
generator seeded from a hash of ``(seed, block)``, so the estimate is the same on every
device and for every ``chunk_size``, and never correlated with data drawn from a generator
seeded with a small integer. Columns that are constant over the samples (dead units) carry no
information and are dropped first.

Cost: O(samples * n^2 d) time (``samples + 1`` matrix products of the ``(n, d)`` layer with
itself, chunked), O(n * chunk + samples * chunk * d) extra memory; at n = 1,000 and d = 512
about 0.2 s on two CPU cores with the default 4 samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lit_infobottleneck.estimators._kernels import check_chunk_size
from lit_infobottleneck.estimators._pairwise import DEFAULT_BLOCK_BYTES, distance_block
from lit_infobottleneck.estimators._validation import (
    as_codes,
    as_labels,
    as_samples,
    as_tensor,
    check_int_at_least,
    check_same_length,
    layer_samples,
    resolve_discrete,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.kde import auto_noise_var, check_noise_var
from lit_infobottleneck.estimators.registry import register

#: Default number of noise draws per point.
DEFAULT_SAMPLES = 4
#: Rows per noise block: each block's draws come from its own seeded generator.
NOISE_BLOCK_ROWS = 64


def _check_params(noise_var: object, samples: int, seed: int, chunk_size: int | None) -> None:
    check_noise_var(noise_var)
    check_int_at_least(samples, "samples", 1)
    check_int_at_least(seed, "seed", 0)
    check_chunk_size(chunk_size)


def _block_seed(seed: int, block: int) -> int:
    """A 64-bit generator seed for ``(seed, block)`` (splitmix64 of the pair).

    Mixed, so that the noise never replays the stream of a generator seeded with a small
    integer: data drawn with ``manual_seed(1)`` and noise seeded with 1 would be correlated.
    """
    mask = 2**64 - 1
    x = (seed * 0x9E3779B97F4A7C15 + block * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E5F5) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


def _noise(rows: slice, n: int, d: int, samples: int, seed: int) -> torch.Tensor:
    """Standard normal draws ``(samples, rows, d)`` for ``rows`` of an ``n``-row layer.

    Row block ``b`` (``NOISE_BLOCK_ROWS`` rows) is drawn by its own generator, seeded from
    ``(seed, b)``, so a row's draws do not depend on how the rows are chunked.
    """
    first, last = rows.start // NOISE_BLOCK_ROWS, (rows.stop - 1) // NOISE_BLOCK_ROWS
    parts = []
    for block in range(first, last + 1):
        start = block * NOISE_BLOCK_ROWS
        size = min(NOISE_BLOCK_ROWS, n - start)
        gen = torch.Generator().manual_seed(_block_seed(seed, block))
        parts.append(torch.randn(samples, size, d, generator=gen, dtype=torch.float64))
    offset = first * NOISE_BLOCK_ROWS
    return torch.cat(parts, dim=1)[:, rows.start - offset : rows.stop - offset]


def _chunk_rows(n: int, d: int, samples: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        return chunk_size
    by_pairs = DEFAULT_BLOCK_BYTES // (8 * n)
    by_noise = DEFAULT_BLOCK_BYTES // (8 * samples * max(d, 1))
    rows = max(1, min(n, by_pairs, by_noise))
    return rows if rows < NOISE_BLOCK_ROWS else rows - rows % NOISE_BLOCK_ROWS


def _grouped_terms(
    t: torch.Tensor,
    groupings: list[torch.Tensor],
    noise_var: float,
    samples: int,
    seed: int,
    chunk_size: int | None,
) -> list[torch.Tensor]:
    """Per-point, per-draw terms ``(samples, n)`` of I(T + Z; C) for each grouping C."""
    n = t.shape[0]
    t = t - t[:1]  # translation-free: cross terms at the scale of the spread, not the offset
    t = t[:, (t != 0).any(dim=0)]  # constant columns (dead units) cancel exactly
    d = t.shape[1]
    log_sizes = [torch.bincount(codes).to(torch.float64).log() for codes in groupings]
    singletons = [bool((sizes == 0).all()) for sizes in log_sizes]
    std, two_var = math.sqrt(noise_var), 2.0 * noise_var
    sq_norms = (t * t).sum(dim=1)
    terms: list[list[torch.Tensor]] = [[] for _ in groupings]
    rows_per_chunk = _chunk_rows(n, d, samples, chunk_size)
    for start in range(0, n, rows_per_chunk):
        rows = slice(start, min(start + rows_per_chunk, n))
        block = t[rows]
        local = torch.arange(rows.stop - rows.start, device=t.device)
        diag = (local, local + rows.start)
        sq = distance_block(block, t, "sqeuclidean", b_sq_norms=sq_norms)
        noise = _noise(rows, n, d, samples, seed).to(t.device) * std
        same = [
            None if single else (codes[rows, None] == codes[None, :]).to(torch.float64)
            for codes, single in zip(groupings, singletons, strict=True)
        ]
        per_draw: list[list[torch.Tensor]] = [[] for _ in groupings]
        for z in noise:
            # e_ij = -(|t_i - t_j|^2 + 2 z.(t_i - t_j)) / (2 noise_var); e_ii = 0 exactly
            own = (z * block).sum(dim=1, keepdim=True)
            log_ratio = torch.addmm(own, z, t.T, alpha=-1.0).mul_(2.0).add_(sq).div_(-two_var)
            log_ratio[diag] = 0.0
            top = log_ratio.amax(dim=1, keepdim=True)  # >= 0, the j = i term
            ratio = log_ratio.sub_(top).exp_()  # log-sum-exp, one exp shared by all groupings
            top = top[:, 0]
            log_all = ratio.sum(dim=1).log() + top - math.log(n)
            for out, codes, sizes, mask in zip(per_draw, groupings, log_sizes, same, strict=True):
                if mask is None:  # every group a single sample: the own-group term is e_ii = 0
                    out.append(-log_all)
                    continue
                log_same = (ratio * mask).sum(dim=1).log() + top
                out.append(log_same - sizes[codes[rows]] - log_all)
        for out, draws in zip(terms, per_draw, strict=True):
            out.append(torch.stack(draws))
    return [torch.cat(parts, dim=1) for parts in terms]


def _summary(terms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(estimate clamped at 0, Monte Carlo standard error) from terms ``(samples, n)``."""
    samples, n = terms.shape
    estimate = terms.mean().clamp(min=0.0)
    if samples < 2:
        return estimate, torch.full_like(estimate, math.nan)
    return estimate, (terms.var(dim=0).sum() / samples).sqrt() / n


def _information(
    t: torch.Tensor,
    groupings: list[torch.Tensor],
    noise_var: Any,
    samples: int,
    seed: int,
    chunk_size: int | None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    var = auto_noise_var(t) if isinstance(noise_var, str) else float(noise_var)
    groupings = [codes.to(t.device) for codes in groupings]
    terms = _grouped_terms(t, groupings, var, samples, seed, chunk_size)
    return [_summary(part) for part in terms]


def noisy_mutual_information(
    t: torch.Tensor,
    groups: torch.Tensor,
    *,
    noise_var: float | str = "auto",
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    discrete_groups: bool | None = None,
    chunk_size: int | None = None,
    return_stderr: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """I(T + Z; C) in nats (0-d float64), Z ~ N(0, noise_var I), by Monte Carlo.

    ``t`` ``(n, d)``: activations. ``groups`` ``(n, ...)``: integer class labels
    (``discrete_groups=True`` requires them), or any tensor whose distinct rows are the values
    of C (``None``/``False``; e.g. the inputs X, for I(X;T) with X by identity).
    ``noise_var="auto"`` calibrates on ``t`` (``.kde.auto_noise_var``).
    ``return_stderr=True`` also returns the Monte Carlo standard error (NaN for 1 sample).
    """
    _check_params(noise_var, samples, seed, chunk_size)
    t = as_samples(t, "t")
    g = as_tensor(groups, "y")
    codes = as_labels(g, "y") if discrete_groups else as_codes(g, "y")
    check_same_length(t, codes, "t", "y")
    estimate, stderr = _information(t, [codes], noise_var, samples, seed, chunk_size)[0]
    return (estimate, stderr) if return_stderr else estimate


def noisy_entropy(
    t: torch.Tensor,
    *,
    noise_var: float | str = "auto",
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Differential entropy h(T + Z) in nats (0-d float64) of the n-component mixture.

    ``h(T + Z) = d/2 log(2 pi e noise_var) + I(index; T + Z)``: the noise entropy plus the
    information about which sample was drawn, estimated as in ``noisy_mutual_information``.
    """
    _check_params(noise_var, samples, seed, chunk_size)
    t = as_samples(t, "t")
    var = auto_noise_var(t) if isinstance(noise_var, str) else float(noise_var)
    index = torch.arange(t.shape[0])
    info = _information(t, [index], var, samples, seed, chunk_size)[0][0]
    return 0.5 * t.shape[1] * math.log(2 * math.pi * math.e * var) + info


@register
class NoisyEstimator(Estimator):
    """I(X; T + Z) and I(T + Z; Y) of the noisy layer by Monte Carlo (Goldfeld et al. 2019).

    ``noise_var="auto"`` (the default) sets the noise per layer: ``calibration`` reports
    the value, and an estimator still at ``"auto"`` calibrates on the activations of each
    call. ``mutual_information(x, y)`` adds the noise to ``x`` and needs discrete ``y``.
    """

    name = "noisy"
    treats_x_by_identity = True

    def __init__(
        self,
        noise_var: float | str = "auto",
        samples: int = DEFAULT_SAMPLES,
        seed: int = 0,
        chunk_size: int | None = None,
    ) -> None:
        _check_params(noise_var, samples, seed, chunk_size)
        self.noise_var, self.samples, self.seed = noise_var, samples, seed
        self.chunk_size = chunk_size

    def calibration(self, t: torch.Tensor) -> dict[str, Any]:
        """``{"noise_var": float}`` chosen on ``t`` when ``noise_var="auto"``, else ``{}``."""
        if self.noise_var != "auto":
            return {}
        return {"noise_var": auto_noise_var(t)}

    def _estimate(self, t: torch.Tensor, groupings: list[torch.Tensor]) -> list[torch.Tensor]:
        results = _information(
            t, groupings, self.noise_var, self.samples, self.seed, self.chunk_size
        )
        return [estimate for estimate, _ in results]

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        """I(X + Z; Y) for discrete ``y`` (class labels); a continuous ``y`` is refused."""
        y_t = as_tensor(y, "y")
        if not resolve_discrete(y_t, discrete_y):
            raise ValueError(
                f"`y` is continuous (dtype {y_t.dtype}); the noisy estimator measures "
                "I(X + Z; Y) for discrete y: pass integer class labels, or use "
                "input_information(y, x) to treat each distinct row of y as its own value."
            )
        t = as_samples(x, "x")
        labels = as_labels(y_t, "y")
        check_same_length(t, labels, "x", "y")
        return self._estimate(t, [labels])[0]

    def input_information(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """I(X; T + Z) with X discrete by identity: at most log(number of distinct inputs)."""
        t = as_samples(t, "t")
        inputs = as_codes(x, "x")
        check_same_length(t, inputs, "t", "x")
        return self._estimate(t, [inputs])[0]

    def label_information(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """I(T + Z; Y) for class labels ``y``: at most H(Y)."""
        t = as_samples(t, "t")
        labels = as_labels(y, "y")
        check_same_length(t, labels, "t", "y")
        return self._estimate(t, [labels])[0]

    def layer_information(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(I(X;T), I(T;Y)) from the same noise draws and one walk over ``t``."""
        t, inputs, labels = layer_samples(x, t, y)
        ixt, ity = self._estimate(t, [inputs, labels])
        return ixt, ity

    def params(self) -> dict[str, Any]:
        return {"noise_var": self.noise_var, "samples": self.samples, "seed": self.seed}
