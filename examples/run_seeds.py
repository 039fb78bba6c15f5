"""Train one configuration with several seeds, then draw the mean information plane.

    python examples/run_seeds.py --config configs/tishby_tanh.yaml --seeds 5
    python examples/run_seeds.py --config configs/default.yaml --seeds 3 --trainer.max_epochs 5
    python examples/run_seeds.py --config configs/default.yaml --seeds 3 --band minmax --out figs

For S = 0 ... N-1 (``--first_seed`` to start elsewhere) this runs

    python -m lit_infobottleneck fit --config CONFIG --seed_everything S [extra arguments]

in a subprocess (the same as ``lit-ib fit``; arguments this script does not know, such as
``--trainer.max_epochs 5``, are passed on). ``--seed_everything`` seeds the weights' init
and any noise of the model; the data module keeps its own ``seed`` (the split and the
shuffle order), unless ``--vary_data`` also passes ``--data.init_args.seed S``.

Each fit writes a new ``version_N`` directory below its logger's ``save_dir/name`` and prints
``Results: <that directory>``; the script collects those lines, then aggregates the runs as
``lit-ib plot RUN_DIR RUN_DIR ...`` does (:func:`lit_infobottleneck.plot_runs.plot_runs`):
per estimator ``info_plane_<estimator>_mean.png`` and ``info_curves_<estimator>_mean.png``
(the mean over the seeds with a band: ±1 standard error, or ``--band minmax``),
``info_geometry_mean.png`` when the runs measured geometry, and ``info_metrics_mean.json``,
written into ``--out`` or else the runs' common parent (``runs/tishby_tanh`` for the first
command). Drawing them again later, from the runs on disk:

    lit-ib plot runs/tishby_tanh/version_*

Run time: N times one fit (``configs/tishby_tanh.yaml``: 2-6 min each on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from lit_infobottleneck.plot_runs import BANDS, plot_runs

RESULTS = re.compile(r"^Results: (.+)$", re.MULTILINE)


def fit_command(config: Path, seed: int, extra: list[str], vary_data: bool) -> list[str]:
    """The ``lit-ib fit`` command line of one seed."""
    command = [sys.executable, "-m", "lit_infobottleneck", "fit", "--config", str(config)]
    command += ["--seed_everything", str(seed)]
    if vary_data:
        command += ["--data.init_args.seed", str(seed)]
    return command + extra


def fit(command: list[str]) -> Path:
    """Run one fit, its output shown as it comes; return the run directory it reports."""
    output = bytearray()
    with subprocess.Popen(command, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while chunk := os.read(process.stdout.fileno(), 4096):  # whatever has come
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            output += chunk
    if process.returncode != 0:
        raise SystemExit(f"run_seeds: {' '.join(command)} exited with {process.returncode}")
    found = RESULTS.findall(output.decode(errors="replace"))
    if not found:
        raise SystemExit("run_seeds: the fit printed no 'Results: <log dir>' line")
    return Path(found[-1].strip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Other arguments are passed on to lit-ib fit.",
    )
    parser.add_argument("--config", type=Path, required=True, help="a lit-ib fit config")
    parser.add_argument("--seeds", type=int, default=5, help="how many runs (at least 2)")
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument(
        "--vary_data", action="store_true", help="also seed the data split and shuffle with S"
    )
    parser.add_argument("--band", choices=sorted(BANDS), default="se")
    parser.add_argument("--out", type=Path, default=None, help="default: the runs' parent")
    parser.add_argument("--dpi", type=int, default=150)
    args, extra = parser.parse_known_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (a mean with a band needs two runs)")
    run_dirs: list[Path] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        print(f"run_seeds: seed {seed} ({len(run_dirs) + 1} of {args.seeds})", flush=True)
        run_dirs.append(fit(fit_command(args.config, seed, extra, args.vary_data)))
    print("run_seeds: runs " + " ".join(map(str, run_dirs)))
    written = plot_runs(run_dirs, args.out, dpi=args.dpi, band=args.band)
    print(f"run_seeds: mean of {len(run_dirs)} runs in {written[0].parent}:")
    for path in written:
        print(f"  {path}")


if __name__ == "__main__":
    main()
