"""How estimation time and peak memory grow with the sample count n and the layer width d.

For every registered estimator (or those named by ``--estimators``) this times the operation
InfoMetrics runs once per layer and epoch, ``estimator.layer_information(x, t, y)``, on a
synthetic layer: inputs ``x`` ``(n, 64)`` ~ N(0, 1), activations ``t = tanh(x W + 0.1 e)``
``(n, d)`` with a fixed seeded ``W`` ``(64, d)`` of scale 1/8, and 10-class labels
``y = argmax(x V + 0.5 e')`` from a fixed linear teacher ``V`` (float32 ``x`` and ``t``, as
InfoMetrics captures them). Two sweeps:

- n in 1k, 2k, 4k, ..., 64k at d = 10;
- d in 10, 64, 256, 1024, 4096 at n = 4,096.

Every estimator runs with its defaults (the neural bounds too: up to 2,000 Adam steps per
bound with early stopping, two bounds per layer). ``--quick`` shrinks the sizes, the budget
and the neural bounds' ``max_steps`` (100) for a smoke test of about a minute and a half.

Time: wall-clock seconds of one call after a warm-up call on 128 samples (calls under 0.3 s
are repeated, up to 5 calls or 1 s in all, and the fastest is kept).

Peak memory: the extra resident memory of the call, ``VmHWM`` after it minus ``VmRSS``
before it, both from ``/proc/self/status``, with ``VmHWM`` reset to the current RSS by
writing "5" to ``/proc/self/clear_refs`` just before the call (Linux >= 4.0; where that
write is refused, a thread samples ``VmRSS`` every millisecond instead). Before each
measurement the garbage collector runs and ``malloc_trim(0)`` hands freed heap pages back
to the OS, so memory freed by earlier points is not silently reused (torch's CPU allocator
does not cache). The data themselves are allocated before the baseline; the estimator's own
float64 copies of them are counted. Each (estimator, sweep) runs in its own worker
subprocess, points in increasing size, so one estimator's leftovers never show up in
another's numbers, and a point that overruns can be killed without losing the run.

Threads: every worker runs with ``--threads`` torch, BLAS and cKDTree threads (default 1).
The 2 cores of the benchmark machine are shared with other jobs, and there two threads
per process are fragile: in a probe with one core kept busy by another process, MINE's
training loop (many small ops) ran 30-70x slower with 2 torch threads than on the idle
machine, and less than 2x slower with 1 thread. One thread per worker keeps the growth
rates readable under shared load; ``--threads 2`` measures both cores on an idle machine.
The 1-minute load average at each point is printed next to the results.

Budget: once a point takes more than ``--budget`` seconds (default 30; 5 with ``--quick``),
the larger sizes of that sweep are not run ("skipped (> budget)"); a point still running
after ``--hard-limit`` seconds (default 4 x budget) is killed ("killed (> ... s)"), which
also ends its sweep. Exponents are fitted on what was measured.

Exponents: ``b`` of ``time ~ a n^b`` (and of memory, and the same in d) by least squares on
log-log, using only the points at or above a floor where fixed per-call overheads no longer
dominate: n >= 4,096 (d >= 256 for the d sweep; n >= 1,024 / d >= 64 with ``--quick``).
Memory points under 8 MiB are left out of the memory fits (page and allocator granularity),
so an estimator whose memory stays under 8 MiB shows "< 8 MiB". Fits on two points are
marked with their count.

References, run in the same worker process right after ours on the same data, reported as
a ratio (reference time / ours; > 1 means ours is faster) and by the largest absolute
difference of the two estimates:

- ``ksg``: scikit-learn's ``mutual_info_classif`` / ``mutual_info_regression`` estimate one
  feature at a time, not a d-dimensional layer, so the reference is a scipy cKDTree
  implementation of the same two estimators (KSG algorithm 1 with the max-norm for I(X;T),
  and Ross 2014 with the Euclidean norm for I(T;Y), as scikit-learn's ``_compute_mi_cd``),
  on the same standardised, jittered samples (``prepare_samples``);
- ``kde``: the same formula on a dense (n, n) ``torch.cdist`` matrix, run while it fits in
  ``--dense-cap-gib`` (default 8 GiB for an estimated 3.25 n^2 float64 values): its
  memory is the point of the chunked design;
- ``gaussian``: numpy's ``slogdet`` of the same (ridged) correlation / covariance matrices;
- the other estimators have no comparable reference ("n/a").

A reference that exceeds the budget is skipped at larger sizes, like ours.

    python benchmarks/scale.py                      # full run (~20 min, shared 2 cores)
    python benchmarks/scale.py --quick              # smoke test (~1.5 min)
    python benchmarks/scale.py --estimators kde,ksg --budget 60 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma

from lit_infobottleneck.estimators import Estimator, available_estimators, get_estimator
from lit_infobottleneck.estimators.knn import prepare_samples

INPUT_DIM = 64
CLASSES = 10
N_SIZES = [1024, 2048, 4096, 8192, 16_384, 32_768, 65_536]
D_SIZES = [10, 64, 256, 1024, 4096]
FIXED_D, FIXED_N = 10, 4096
QUICK_N_SIZES = [256, 512, 1024, 2048]
QUICK_D_SIZES = [10, 64, 256]
QUICK_FIXED_N = 1024
NEURAL = ("infonce", "mine", "nwj", "smile")
MEMORY_FLOOR_MIB = 8.0
WARMUP_N = 128
#: Threads of the references' cKDTree queries; the worker sets it to ``--threads``.
CKDTREE_WORKERS = {"workers": -1}

# --------------------------------------------------------------------------------------------
# data


def make_layer(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs ``(n, 64)``, tanh activations ``(n, d)`` and 10-class labels ``(n,)``.

    The layer's weights ``W`` and the label teacher ``V`` depend on ``d`` only (one layer
    for every n); the samples on ``seed``.
    """
    weights = torch.Generator().manual_seed(1000 + d)
    w = torch.randn(INPUT_DIM, d, generator=weights) / math.sqrt(INPUT_DIM)
    v = torch.randn(INPUT_DIM, CLASSES, generator=weights) / math.sqrt(INPUT_DIM)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, INPUT_DIM, generator=gen)
    t = torch.tanh(x @ w + 0.1 * torch.randn(n, d, generator=gen))
    y = (x @ v + 0.5 * torch.randn(n, CLASSES, generator=gen)).argmax(dim=1)
    return x, t, y


# --------------------------------------------------------------------------------------------
# references (same quantities as layer_information, other implementations)


def _ksg_ckdtree(a: np.ndarray, b: np.ndarray, k: int = 3) -> float:
    """KSG algorithm 1, max-norm, with scipy's cKDTree (``--threads`` query workers)."""
    workers = CKDTREE_WORKERS["workers"]
    n = len(a)
    joint = np.hstack([a, b])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf, workers=workers)[0][:, -1]
    radius = np.nextafter(eps, 0)
    # counts include the point itself: n_x + 1 in the KSG formula
    n_a = cKDTree(a).query_ball_point(a, radius, p=np.inf, return_length=True, workers=workers)
    n_b = cKDTree(b).query_ball_point(b, radius, p=np.inf, return_length=True, workers=workers)
    return float(digamma(k) + digamma(n) - np.mean(digamma(n_a) + digamma(n_b)))


def _ross_ckdtree(a: np.ndarray, labels: np.ndarray, k: int = 3) -> float:
    """Ross (2014) with scipy's cKDTree, as scikit-learn's ``_compute_mi_cd`` (d columns)."""
    workers = CKDTREE_WORKERS["workers"]
    counts = np.bincount(labels)
    keep = counts[labels] > 1
    a, labels = a[keep], labels[keep]
    n = len(a)
    radius = np.empty(n)
    k_all = np.empty(n)
    for c in np.unique(labels):
        mask = labels == c
        k_c = min(k, int(mask.sum()) - 1)
        radius[mask] = cKDTree(a[mask]).query(a[mask], k=k_c + 1, workers=workers)[0][:, -1]
        k_all[mask] = k_c
    within = np.nextafter(radius, 0)
    m_all = cKDTree(a).query_ball_point(a, within, return_length=True, workers=workers)
    return float(
        digamma(n)
        + np.mean(digamma(k_all))
        - np.mean(digamma(counts[labels]))
        - np.mean(digamma(m_all))
    )


def ksg_reference(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    t_prep = prepare_samples(t.double(), standardize=True, jitter=1e-10, seed=0).numpy()
    x_prep = prepare_samples(x.double(), standardize=True, jitter=1e-10, seed=1).numpy()
    return _ksg_ckdtree(t_prep, x_prep), _ross_ckdtree(t_prep, y.numpy())


def kde_dense_reference(
    x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, noise_var: float = 0.1
) -> tuple[float, float]:
    """KDE upper bound (KL distances) on one dense (n, n) ``torch.cdist`` matrix.

    The inputs are distinct, so each is its own group: I(X;T) = -mean log(1/n sum_j K_ij).
    """
    n = t.shape[0]
    log_kernel = torch.cdist(t.double(), t.double()).pow_(2).div_(-2.0 * noise_var)
    log_all = torch.logsumexp(log_kernel, dim=1) - math.log(n)
    ixt = -log_all.mean()
    other_class = y[:, None] != y[None, :]
    log_same = torch.logsumexp(log_kernel.masked_fill(other_class, -math.inf), dim=1)
    ity = (log_same - torch.bincount(y).double().log()[y] - log_all).mean()
    return float(ixt), float(ity)


def kde_dense_gib(n: int) -> float:
    """Estimated peak of :func:`kde_dense_reference`: ~3 float64 (n, n) matrices + 2 masks."""
    return 3.25 * 8 * n * n / 2**30


def gaussian_reference(
    x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, ridge: float = 1e-6
) -> tuple[float, float]:
    """Log-det formulas with numpy: I(T;X) on correlations, I(T;Y) by class covariances,
    each log-det less its Wishart bias ``d log(2/(m-1)) + sum_i psi((m-i)/2)`` (scipy)."""
    from scipy.special import digamma

    def bias(dims: int, m: int) -> float:
        return dims * np.log(2 / (m - 1)) + float(digamma((m - np.arange(1, dims + 1)) / 2).sum())

    def logdet(cov: np.ndarray, m: int) -> float:
        dims = int((np.diag(cov) > 0).sum())  # non-constant columns
        return float(np.linalg.slogdet(cov + ridge * np.eye(len(cov)))[1]) - bias(dims, m)

    def standardize(z: np.ndarray) -> np.ndarray:
        z = z - z.mean(axis=0)
        std = z.std(axis=0, ddof=1)
        return z / np.where(std > 0, std, 1.0)

    tn, xn, yn = t.double().numpy(), x.double().numpy(), y.numpy()
    d = tn.shape[1]
    corr = np.cov(standardize(np.hstack([tn, xn])), rowvar=False)
    n = len(yn)
    ixt = 0.5 * (logdet(corr[:d, :d], n) + logdet(corr[d:, d:], n) - logdet(corr, n))
    z = standardize(tn)
    h_t = logdet(np.cov(z, rowvar=False), n)
    counts = np.bincount(yn)
    h_t_given_y = sum(
        count / len(yn) * logdet(np.cov(z[yn == c], rowvar=False), int(count))
        for c, count in enumerate(counts)
        if count > 0
    )
    return ixt, 0.5 * (h_t - h_t_given_y)


REFERENCES: dict[str, tuple[str, Callable[..., tuple[float, float]]]] = {
    "ksg": ("cKDTree KSG + Ross (scipy)", ksg_reference),
    "kde": ("dense torch.cdist (n x n)", kde_dense_reference),
    "gaussian": ("numpy slogdet", gaussian_reference),
}

# --------------------------------------------------------------------------------------------
# measurement (worker side)

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
except OSError:  # pragma: no cover - not glibc
    _LIBC = None


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(fn: Callable[[], object]) -> tuple[object, float, float]:
    """``(result, seconds, peak extra MiB)`` of ``fn()``; see the module docstring."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    baseline = _status_kib("VmRSS")
    sampler, peak, done = None, [baseline], threading.Event()
    if not _reset_peak():

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _status_kib("VmRSS"))
                time.sleep(0.001)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    if sampler is None:
        peak[0] = _status_kib("VmHWM")
    else:
        done.set()
        sampler.join()
    extra_mib = max(peak[0] - baseline, 0) / 1024
    times = [seconds]
    while seconds < 0.3 and len(times) < 5 and sum(times) < 1.0:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return result, min(times), extra_mib


def _load_1min() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def _emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _values(result: object) -> list[float]:
    return [float(v) for v in result]  # type: ignore[union-attr]


def estimator_for(name: str, quick: bool) -> Estimator:
    if quick and name in NEURAL:
        return get_estimator(name, max_steps=100)
    return get_estimator(name)


REFUSED, AFTER_ERROR, OVER_BUDGET = "refused", "skipped (after error)", "skipped (> budget)"


def _run_point(size: int, part: str, fn: Callable[[], object], args: argparse.Namespace):
    """Measure ``fn`` as point ``size`` of ``part`` ("ours" / "ref"), emitting its events.

    Returns None to go on, :data:`REFUSED` (a documented ``ValueError`` for this input;
    larger sizes may be fine), or why the larger sizes of ``part`` are skipped.
    """
    _emit(event="begin", size=size, part=part)
    try:
        result, seconds, mib = measure(fn)
    except ValueError as err:
        reason = "refused: " + str(err).splitlines()[0][:60]
        _emit(event="error", size=size, part=part, reason=reason)
        return REFUSED
    except (RuntimeError, MemoryError) as err:
        _emit(event="error", size=size, part=part, reason=str(err).splitlines()[0][:80])
        return AFTER_ERROR
    _emit(
        event="done",
        size=size,
        part=part,
        seconds=seconds,
        mib=mib,
        values=_values(result),
        load=_load_1min(),
    )
    return OVER_BUDGET if seconds > args.budget else None


def worker(args: argparse.Namespace) -> None:
    """Run one (estimator, sweep): points in increasing size, one JSON line per event."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    CKDTREE_WORKERS["workers"] = args.threads
    name, sweep = args.worker, args.sweep
    estimator = estimator_for(name, args.quick)
    reference = REFERENCES.get(name) if args.reference else None
    sizes = [int(s) for s in args.sizes.split(",")]

    def shape(size: int) -> tuple[int, int]:
        return (size, args.fixed) if sweep == "n" else (args.fixed, size)

    xw, tw, yw = make_layer(WARMUP_N, shape(sizes[0])[1], seed=99)
    with contextlib.suppress(ValueError):  # a documented refusal (e.g. too few per class)
        measure(lambda: estimator.layer_information(xw, tw, yw))
        if reference is not None:
            measure(lambda: reference[1](xw, tw, yw))

    skip_ours = skip_ref = None
    for size in sizes:
        n, d = shape(size)
        if skip_ours:
            _emit(event="skip", size=size, part="ours", reason=skip_ours)
            _emit(event="skip", size=size, part="ref", reason=skip_ours)
            continue
        x, t, y = make_layer(n, d)
        outcome = _run_point(
            size, "ours", lambda x=x, t=t, y=y: estimator.layer_information(x, t, y), args
        )
        if outcome == REFUSED:
            _emit(event="skip", size=size, part="ref", reason="not run (ours refused)")
            continue
        if outcome == AFTER_ERROR:
            skip_ours = outcome
            continue
        skip_ours = outcome
        if reference is None:
            continue
        if skip_ref:
            _emit(event="skip", size=size, part="ref", reason=skip_ref)
            continue
        if name == "kde" and kde_dense_gib(n) > args.dense_cap_gib:
            reason = f"not run (dense needs ~{kde_dense_gib(n):.0f} GiB)"
            _emit(event="skip", size=size, part="ref", reason=reason)
            continue
        skip_ref = _run_point(size, "ref", lambda x=x, t=t, y=y: reference[1](x, t, y), args)
        del x, t, y


# --------------------------------------------------------------------------------------------
# driver (parent side)


@dataclass
class Point:
    """One measured (or skipped) part of a point: ``seconds``/``mib`` or a ``note``."""

    seconds: float | None = None
    mib: float | None = None
    values: list[float] | None = None
    note: str = ""
    load: float | None = None


@dataclass
class Sweep:
    name: str
    axis: str
    sizes: list[int]
    ours: dict[int, Point] = field(default_factory=dict)
    ref: dict[int, Point] = field(default_factory=dict)
    wall: float = 0.0


class _Lines:
    """Line reader on a pipe with a timeout (``select`` on the raw descriptor)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd, self.buf = proc.stdout.fileno(), b""

    def read(self, timeout: float) -> str | None:
        """The next line; ``None`` on timeout, ``""`` at end of stream."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return ""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_sweep(
    name: str, axis: str, sizes: list[int], fixed: int, args: argparse.Namespace
) -> Sweep:
    sweep = Sweep(name, axis, sizes)
    start = time.perf_counter()
    with_ref = name in REFERENCES
    todo = list(sizes)
    while todo:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            name,
            "--sweep",
            axis,
            "--sizes",
            ",".join(map(str, todo)),
            "--fixed",
            str(fixed),
            "--budget",
            str(args.budget),
            "--dense-cap-gib",
            str(args.dense_cap_gib),
            "--threads",
            str(args.threads),
        ]
        cmd += ["--quick"] if args.quick else []
        cmd += [] if with_ref else ["--no-reference"]
        threads = str(args.threads)
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
        env.update(MKL_NUM_THREADS=threads)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
        lines, current, killed = _Lines(proc), None, None
        while True:
            line = lines.read(args.hard_limit if current else 600.0)
            if line is None:  # overran: kill our own worker
                proc.kill()
                killed = current
                break
            if line == "":
                break
            event = json.loads(line)
            size, part = event["size"], event["part"]
            table = sweep.ours if part == "ours" else sweep.ref
            if event["event"] == "begin":
                current = (size, part)
                continue
            current = None
            if event["event"] == "done":
                table[size] = Point(
                    event["seconds"], event["mib"], event["values"], load=event["load"]
                )
                _log(
                    f"  {name} {axis}={size} {part}: {event['seconds']:.3f} s, "
                    f"{event['mib']:.1f} MiB, values {event['values']}, load {event['load']}"
                )
            else:
                table[size] = Point(note=event.get("reason", event["event"]))
                if event["event"] == "error":
                    _log(f"  {name} {axis}={size} {part}: error {event['reason']}")
        proc.wait()
        todo = []
        if killed is not None:
            size, part = killed
            limit = f"killed (> {args.hard_limit:g} s)"
            _log(f"  {name} {axis}={size} {part}: {limit}")
            if part == "ours":
                sweep.ours[size] = Point(note=limit)
                sweep.ref[size] = Point(note="skipped (> budget)")
                for s in sizes:
                    if s > size:
                        sweep.ours[s] = Point(note="skipped (> budget)")
                        sweep.ref[s] = Point(note="skipped (> budget)")
            else:
                sweep.ref[size] = Point(note=limit)
                todo = [s for s in sizes if s > size]
                with_ref = False
                for s in todo:
                    sweep.ref[s] = Point(note="skipped (> budget)")
        elif proc.returncode != 0:
            for s in sizes:
                sweep.ours.setdefault(s, Point(note=f"worker failed ({proc.returncode})"))
    sweep.wall = time.perf_counter() - start
    return sweep


def fit_exponent(points: list[tuple[int, float]]) -> tuple[float, int] | None:
    """Least-squares slope of log(value) on log(size), with the number of points."""
    if len(points) < 2:
        return None
    sizes, values = zip(*points, strict=True)
    slope = np.polyfit(np.log(sizes), np.log(values), 1)[0]
    return float(slope), len(points)


def _fmt_seconds(s: float) -> str:
    if s >= 100:
        return f"{s:.0f}"
    if s >= 10:
        return f"{s:.1f}"
    if s >= 1:
        return f"{s:.2f}"
    if s >= 0.01:
        return f"{s:.3f}"
    return f"{s:.4f}"


def _fmt_mib(m: float) -> str:
    return f"{m:.0f}" if m >= 10 else f"{m:.1f}"


def _cell(point: Point | None, attr: str) -> str:
    if point is None:
        return "-"
    if point.seconds is None:
        return point.note
    if attr == "load":
        return f"{point.load:.1f}" if point.load is not None else "-"
    return _fmt_seconds(point.seconds) if attr == "seconds" else _fmt_mib(point.mib or 0.0)


def _size_label(axis: str, size: int, fixed: int) -> str:
    return f"n={size}" if axis == "n" else f"d={size}"


def print_tables(sweeps: list[Sweep], axis: str, fixed: int) -> None:
    rows = [s for s in sweeps if s.axis == axis]
    if not rows:
        return
    sizes = rows[0].sizes
    what = f"d = {fixed}" if axis == "n" else f"n = {fixed}"
    header = "| estimator | " + " | ".join(_size_label(axis, s, fixed) for s in sizes) + " |"
    rule = "|---" * (len(sizes) + 1) + "|"
    titles = (
        ("seconds", "Time (s) of layer_information"),
        ("mib", "Peak extra memory (MiB) of layer_information"),
        ("load", "1-min load average (all jobs on the machine) as each point ended"),
    )
    for attr, title in titles:
        print(f"\n### {title} vs {axis}, {what}\n")
        print(header)
        print(rule)
        for sweep in rows:
            cells = [_cell(sweep.ours.get(s), attr) for s in sizes]
            print(f"| {sweep.name} | " + " | ".join(cells) + " |")
    print(f"\n### Estimates I(X;T) / I(T;Y) vs {axis}, {what} (nats; hsic: nHSIC)\n")
    print(header)
    print(rule)
    for sweep in rows:
        cells = []
        for s in sizes:
            p = sweep.ours.get(s)
            cells.append(f"{p.values[0]:.3f} / {p.values[1]:.3f}" if p and p.values else "-")
        print(f"| {sweep.name} | " + " | ".join(cells) + " |")
    print(f"\n### References vs {axis}, {what}: same data, same process\n")
    print(
        "| estimator | reference | size | ours (s) | reference (s) | reference / ours "
        "| ours MiB | reference MiB | max abs. difference |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for sweep in rows:
        if sweep.name not in REFERENCES:
            print(f"| {sweep.name} | n/a | | | | | | | |")
            continue
        label = REFERENCES[sweep.name][0]
        for s in sizes:
            ours, ref = sweep.ours.get(s), sweep.ref.get(s)
            if ours is None or ours.seconds is None:
                continue
            if ref is None or ref.seconds is None:
                note = ref.note if ref else "-"
                print(
                    f"| {sweep.name} | {label} | {_size_label(axis, s, fixed)} "
                    f"| {_fmt_seconds(ours.seconds)} | {note} | - | {_cell(ours, 'mib')} | - | - |"
                )
                continue
            diff = max(abs(a - b) for a, b in zip(ours.values, ref.values, strict=True))
            print(
                f"| {sweep.name} | {label} | {_size_label(axis, s, fixed)} "
                f"| {_fmt_seconds(ours.seconds)} | {_fmt_seconds(ref.seconds)} "
                f"| {ref.seconds / ours.seconds:.2f}x | {_cell(ours, 'mib')} "
                f"| {_cell(ref, 'mib')} | {diff:.1e} |"
            )


def print_exponents(sweeps: list[Sweep], floors: dict[str, int]) -> None:
    print(
        f"\n### Fitted exponents b (value ~ a size^b), points n >= {floors['n']} / "
        f"d >= {floors['d']}; memory points >= {MEMORY_FLOOR_MIB:.0f} MiB\n"
    )
    print("| estimator | time vs n | memory vs n | time vs d | memory vs d |")
    print("|---|---|---|---|---|")
    names = list(dict.fromkeys(s.name for s in sweeps))
    for name in names:
        cells = []
        for axis in ("n", "d"):
            sweep = next((s for s in sweeps if s.name == name and s.axis == axis), None)
            if sweep is None:
                cells += ["-", "-"]
                continue
            measured = [
                (s, p) for s, p in sorted(sweep.ours.items()) if s >= floors[axis] and p.seconds
            ]
            for attr in ("seconds", "mib"):
                pts = [(s, getattr(p, attr)) for s, p in measured]
                if attr == "mib":
                    pts = [(s, m) for s, m in pts if m >= MEMORY_FLOOR_MIB]
                fit = fit_exponent(pts)
                if fit is None:
                    below = attr == "mib" and len(measured) >= 2
                    cells.append(f"< {MEMORY_FLOOR_MIB:.0f} MiB" if below else "n/a (< 2 points)")
                else:
                    b, count = fit
                    span = f"{pts[0][0]}-{pts[-1][0]}"
                    cells.append(f"{b:.2f} ({span})" if count > 2 else f"{b:.2f} (2 pts, {span})")
        print(f"| {name} | " + " | ".join(cells) + " |")


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, smoke test")
    parser.add_argument(
        "--estimators", default="", help="comma-separated names (default: all registered)"
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds per point")
    parser.add_argument("--hard-limit", type=float, default=None, help="kill after (s)")
    parser.add_argument("--dense-cap-gib", type=float, default=8.0, help="dense KDE reference")
    parser.add_argument("--sweeps", default="n,d", help="which sweeps: n, d or n,d")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch / BLAS / cKDTree threads per worker"
    )
    # worker mode (internal)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sweep", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--fixed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    args = parser.parse_args()
    if args.budget is None:
        args.budget = 5.0 if args.quick else 30.0
    if args.hard_limit is None:
        args.hard_limit = 4 * args.budget
    if args.worker:
        worker(args)
        return

    names = [s for s in args.estimators.split(",") if s] or available_estimators()
    unknown = sorted(set(names) - set(available_estimators()))
    if unknown:
        parser.error(f"unknown estimators {unknown}; available: {available_estimators()}")
    n_sizes, d_sizes = (QUICK_N_SIZES, QUICK_D_SIZES) if args.quick else (N_SIZES, D_SIZES)
    fixed_n = QUICK_FIXED_N if args.quick else FIXED_N
    floors = {"n": 1024, "d": 64} if args.quick else {"n": 4096, "d": 256}
    axes = [a for a in args.sweeps.split(",") if a]

    start, load_start = time.perf_counter(), _load()
    print(
        f"date: {date.today()}, machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} thread(s) per worker, torch {torch.__version__}, "
        f"python {platform.python_version()}; budget {args.budget:.0f} s per point, "
        f"kill after {args.hard_limit:g} s"
    )
    print(f"load average (1/5/15 min) at start: {load_start}")
    sweeps = []
    for name in names:
        for axis in axes:
            sizes, fixed = (n_sizes, FIXED_D) if axis == "n" else (d_sizes, fixed_n)
            _log(f"{name}, {axis} sweep (load {_load()})")
            sweep = run_sweep(name, axis, sizes, fixed, args)
            _log(f"{name}, {axis} sweep: {sweep.wall:.0f} s")
            sweeps.append(sweep)
    if "n" in axes:
        print_tables(sweeps, "n", FIXED_D)
    if "d" in axes:
        print_tables(sweeps, "d", fixed_n)
    print_exponents(sweeps, floors)
    print("\nWall time per estimator (both sweeps, incl. references and worker start-up):")
    for name in names:
        total = sum(s.wall for s in sweeps if s.name == name)
        print(f"- {name}: {total:.0f} s")
    print(f"\nload average at end: {_load()}; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
