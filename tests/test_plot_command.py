"""``lit-ib plot``: which history it finds, units per estimator, one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lit_infobottleneck import plot_command
from lit_infobottleneck.plot_command import find_history, plot_main, plot_run
from tests.test_plotting import hsic_records, make_records


def write_history(directory: Path, records: list[dict], mtime: float | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "info_metrics.json"
    meta = {"unit": "bits", "h_x": 10.8, "h_y": 3.3}
    path.write_text(json.dumps({**meta, "records": records}))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_newest_version_is_chosen_by_number(tmp_path):
    """version_10 is newer than version_9 (a string sort says otherwise), even when an older
    version's history was written last (a resumed run)."""
    root = tmp_path / "runs" / "default"
    for version in range(11):
        write_history(root / f"version_{version}", make_records(), mtime=1_000_000 + version)
    os.utime(root / "version_9" / "info_metrics.json", (2_000_000, 2_000_000))
    expected = root / "version_10" / "info_metrics.json"
    assert find_history(root) == expected
    assert find_history(tmp_path / "runs") == expected
    assert find_history(root / "version_3") == root / "version_3" / "info_metrics.json"


def test_histories_without_versions_go_by_modification_time(tmp_path):
    write_history(tmp_path / "a", make_records(), mtime=2_000_000)
    write_history(tmp_path / "b", make_records(), mtime=1_000_000)
    assert find_history(tmp_path) == tmp_path / "a" / "info_metrics.json"


def test_plot_run_writes_into_the_newest_version(tmp_path):
    for version in (9, 10):
        write_history(tmp_path / f"version_{version}", make_records())
    written = plot_run(tmp_path)
    assert {path.parent for path in written} == {tmp_path / "version_10"}


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """The figures ``plot_run`` draws, by ``(function name, estimator)``."""
    figures = {}

    def recording(draw):
        def wrapper(records, estimator, **kwargs):
            figures[draw.__name__, estimator] = figure = draw(records, estimator, **kwargs)
            return figure

        return wrapper

    for name in ("information_plane", "information_curves"):
        monkeypatch.setattr(plot_command, name, recording(getattr(plot_command, name)))
    return figures


def test_each_estimator_is_drawn_in_its_own_unit(tmp_path, drawn):
    write_history(tmp_path, make_records() + hsic_records(bounds=True))
    written = plot_run(tmp_path, out=tmp_path / "plots")
    assert len(written) == 4
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in written)
    binning = drawn["information_plane", "binning"].axes[0]
    hsic = drawn["information_plane", "hsic"].axes[0]
    assert binning.get_xlabel() == "I(X;T) [bits]"
    assert binning.get_xlim() == pytest.approx((0, 1.05 * 10.8))
    assert "nHSIC" in hsic.get_xlabel()
    assert hsic.get_xlim()[1] <= 1.1
    assert "nHSIC" in drawn["information_curves", "hsic"].axes[0].get_ylabel()


def test_records_without_units_use_the_histories_unit_of_their_estimator(tmp_path, drawn):
    records = [{k: v for k, v in r.items() if k != "unit"} for r in hsic_records()]
    path = write_history(tmp_path, records)
    path.write_text(json.dumps({**json.loads(path.read_text()), "units": {"hsic": "nHSIC"}}))
    plot_run(tmp_path)
    assert drawn["information_plane", "hsic"].axes[0].get_xlabel() == "nHSIC(X, T) [unitless]"


def test_error_line_names_the_debug_switch(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LIT_IB_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        plot_main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("lit-ib plot: error: no info_metrics.json")
    assert len(err.strip().splitlines()) == 1
    assert err.rstrip().endswith("(set LIT_IB_DEBUG=1 for the traceback)")
    monkeypatch.setenv("LIT_IB_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        plot_main([str(tmp_path)])
