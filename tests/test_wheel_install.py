"""The wheel, installed (not editable) in a fresh virtual environment, works outside the repo.

The wheel is built from a copy of the project's package files (so the checkout gets no
``build/`` or ``*.egg-info``), with ``--no-isolation`` when this environment's setuptools
satisfies ``[build-system] requires`` (else in an isolated build environment, which needs the
package registry). It is installed with ``--no-deps`` into a venv made in ``tmp_path``;
instead of installing torch & co. again (minutes, GBs), the venv sees this environment's
site-packages through a ``.pth`` file holding their paths as plain lines: plain path lines
do not run the ``.pth`` files in them, so the editable install's finder, which maps
``lit_infobottleneck`` to the checkout, stays out. Everything then runs from ``tmp_path``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What setuptools needs to build the wheel (see [build-system] in pyproject.toml).
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
SETUPTOOLS_NEEDED = 77

pytestmark = pytest.mark.slow

CHECK = r"""
import importlib.metadata, math, pathlib, sys
import torch
import lit_infobottleneck
from lit_infobottleneck.estimators import binning_mutual_information

venv, repo = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
package = pathlib.Path(lit_infobottleneck.__file__).resolve().parent
assert package.is_relative_to(venv), f"imported from {package}, not from the venv {venv}"
assert not package.is_relative_to(repo), f"imported from the checkout: {package}"
assert (package / "py.typed").is_file(), "py.typed is not installed"
version = importlib.metadata.version("lit-infobottleneck")
assert version == lit_infobottleneck.__version__, (version, lit_infobottleneck.__version__)
generator = torch.Generator().manual_seed(0)
t = torch.randn(200, 3, generator=generator)
y = torch.randint(0, 4, (200,), generator=generator)
mi = float(binning_mutual_information(t, y, discrete_y=True, bins=8))
assert math.isfinite(mi) and mi >= 0, mi
print("ok", version, package, mi)
"""


def _setuptools_can_build() -> bool:
    """This environment can build without isolation: setuptools >= 77 is importable."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    major = importlib.metadata.version("setuptools").split(".")[0]
    return major.isdigit() and int(major) >= SETUPTOOLS_NEEDED


def _run(argv: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{argv} exited with {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )
    return result


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "lit_infobottleneck",
        source / "lit_infobottleneck",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    dist = tmp_path / "dist"
    isolation = ["--no-isolation"] if _setuptools_can_build() else []
    if importlib.util.find_spec("build") is not None:
        command = [sys.executable, "-m", "build", "--wheel", *isolation, "--outdir", str(dist)]
    else:  # the test extra has no `build`: pip builds the wheel the same way
        no_isolation = ["--no-build-isolation"] if isolation else []
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", *no_isolation, "-w"]
        command.append(str(dist))
    _run([*command, str(source)], cwd=source, timeout=200)  # isolated: fetches setuptools
    (wheel,) = dist.glob("lit_infobottleneck-*.whl")
    return wheel


def make_venv(path: Path, wheel: Path) -> Path:
    """A venv at ``path`` with ``wheel`` installed (no dependencies), then this environment's
    site-packages added as plain path lines; returns its ``bin`` directory."""
    venv.create(path, with_pip=False, symlinks=True)
    bin_dir = path / "bin"
    python = bin_dir / "python"
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=path,
        ).stdout.strip()
    )
    # This environment's pip installs into the venv's interpreter (pip >= 22.3). The .pth
    # file comes after, so that pip sees an empty environment: nothing to uninstall.
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    _run([*pip, "install", "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=path)
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_outer_environment.pth").write_text("".join(f"{p}\n" for p in outer))
    return bin_dir


@pytest.mark.timeout(500)  # above the sum of its steps' own limits (200 + 4 x 60 s)
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "lit_infobottleneck/py.typed" in names
    licenses = [
        n
        for n in names
        if n.split("/")[0].endswith(".dist-info") and n.rsplit("/", 1)[-1] == "LICENSE"
    ]
    assert licenses, [n for n in names if ".dist-info/" in n]
    with zipfile.ZipFile(wheel) as archive:
        assert "Apache License" in archive.read(licenses[0]).decode()

    bin_dir = make_venv(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    help_text = _run([str(bin_dir / "lit-ib"), "--help"], cwd=elsewhere).stdout
    assert "fit" in help_text and "plot" in help_text, help_text
    check = [str(bin_dir / "python"), "-c", CHECK, str(tmp_path / "venv"), str(REPO)]
    assert _run(check, cwd=elsewhere).stdout.startswith("ok ")
