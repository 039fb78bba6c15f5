"""End to end: ``lit-ib fit`` -> TensorBoard server -> headless Chromium.

A 2-epoch run of ``configs/default.yaml`` is written to a temporary directory, a real
``tensorboard`` process serves it on 127.0.0.1 (a free port, nothing else is contacted), and
Debian's ``chromium`` loads the page and dumps its DOM.

Why the Time Series view: the ``#scalars`` dashboard is a Polymer element whose charts live
in shadow roots, which ``--dump-dom`` does not serialize (its dump lists no tag at all). The
Time Series view is Angular and renders into the light DOM, and it takes the tag filter from
the query string (``/?tagFilter=info%2F#timeseries``). The DOM must then show the run, the
"Tags matching filter" header with one card per ``info/`` scalar tag, card titles that are
``info/`` tags, and a card's data table with the run's last step and a value that the server
returns for one of those tags, i.e. the browser fetched and rendered the scalars.
TensorBoard's HTTP API (scalar tags, custom-scalars layout, image tags) is checked as well,
without a browser.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Debian's package installs /usr/bin/chromium; .ci/run looks for `chromium` on PATH.
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
RUN = "default/version_0"
LAYERS = ["encoder.layers.1", "encoder.layers.3", "representation", "prediction"]
ESTIMATORS = ["kde", "noisy"]
EXPECTED_INFO_TAGS = {
    f"info/{est}/{q}/{layer}" for est in ESTIMATORS for q in ("I_XT", "I_TY") for layer in LAYERS
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _lit_ib() -> list[str]:
    """The ``lit-ib`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("lit-ib")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("lit-ib")
    if found:
        return [found]
    return [sys.executable, "-m", "lit_infobottleneck"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0):
    assert url.startswith("http://127.0.0.1:"), url  # never anything but this machine
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode())


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """End a process group that this module started (by its id), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tensorboard_server(tmp_path_factory):
    """Train 2 epochs, serve the logs with TensorBoard; yields (base URL, scalar tags)."""
    tmp = tmp_path_factory.mktemp("tb_e2e")
    save_dir = tmp / "runs"
    fit_log = tmp / "fit.log"
    with fit_log.open("w") as log:
        fit = subprocess.run(
            [
                *_lit_ib(),
                "fit",
                "--config",
                str(CONFIG),
                "--trainer.max_epochs",
                "2",
                "--trainer.logger.init_args.save_dir",
                str(save_dir),
            ],
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    assert fit.returncode == 0, _tail(fit_log)
    assert list((save_dir / RUN).glob("events.out.tfevents.*")), _tail(fit_log)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    tb_log = tmp / "tensorboard.log"
    with tb_log.open("w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                str(save_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Wait (bounded) until the server answers and has loaded the run's info/ scalars.
        deadline = time.monotonic() + 60
        tags: dict = {}
        while time.monotonic() < deadline:
            assert server.poll() is None, f"tensorboard exited:\n{_tail(tb_log)}"
            try:
                tags = _get_json(f"{base}/data/plugin/scalars/tags").get(RUN, {})
            except OSError:
                tags = {}
            if EXPECTED_INFO_TAGS <= set(tags):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"TensorBoard did not serve the info/ tags in 60 s: {sorted(tags)}")
        yield base, sorted(tags)
    finally:
        _stop(server)


# pytest-timeout counts the module fixture in the first test that uses it: the fit (its own
# limit 300 s) and TensorBoard's start-up (60 s), plus each test's own limits.
@pytest.mark.timeout(420)
def test_tensorboard_api_serves_info_scalars_layout_and_images(tensorboard_server):
    base, tags = tensorboard_server
    assert _get_json(f"{base}/data/runs") == [RUN]
    assert EXPECTED_INFO_TAGS <= set(tags)
    # calibrated estimators (noise_var: auto) have no DPI check; their flag counts are logged
    assert {f"info/{est}/flagged" for est in ESTIMATORS} <= set(tags)
    assert not {f"info/{est}/dpi_violations" for est in ESTIMATORS} & set(tags)

    layout = _get_json(f"{base}/data/plugin/custom_scalars/layout")
    categories = {c["title"]: c for c in layout["category"]}
    assert {f"info/{est}" for est in ESTIMATORS} <= set(categories)
    for est in ESTIMATORS:
        charts = {c["title"] for c in categories[f"info/{est}"]["chart"]}
        assert {"I_XT", "I_TY"} <= charts

    images = _get_json(f"{base}/data/plugin/images/tags")[RUN]
    assert {f"info_plane/{est}" for est in ESTIMATORS} <= set(images)


def _dump_dom(url: str, tmp_path: Path, virtual_time_ms: int) -> str:
    """The DOM headless Chromium renders for ``url`` after ``virtual_time_ms``."""
    browser = subprocess.Popen(
        [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,2000",
            "--dump-dom",
            f"--virtual-time-budget={virtual_time_ms}",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HOME": str(tmp_path)},
        start_new_session=True,
    )
    try:
        dom, err = browser.communicate(timeout=60 + virtual_time_ms / 1000)
    except subprocess.TimeoutExpired:
        _stop(browser)
        pytest.fail("chromium did not finish in time")
    finally:
        _stop(browser)
    assert browser.returncode == 0, err.decode(errors="replace")[-3000:]
    return dom.decode(errors="replace")


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs headless Chromium (`chromium` on PATH or /usr/bin/chromium; .ci/run installs "
    "Debian's package when apt-get can)",
)
@pytest.mark.timeout(720)  # the fixture (360 s) and three DOM dumps (75 + 100 + 150 s)
def test_chromium_renders_info_charts(tensorboard_server, tmp_path):
    base, tags = tensorboard_server
    info_tags = [t for t in tags if t.startswith("info/")]
    url = f"{base}/?tagFilter={urllib.parse.quote('info/', safe='')}#timeseries"
    # Cards render lazily as they scroll into view; on a loaded machine the first virtual-time
    # budget can end before any is drawn, so a DOM without card titles is dumped again with a
    # longer budget (what a user sees after waiting a little longer).
    for budget in (15_000, 40_000, 90_000):
        dom = _dump_dom(url, tmp_path, budget)
        if re.search(r'<tb-truncated-path[^>]*\btitle="info/', dom):
            break
    (tmp_path / "dom.html").write_text(dom)
    assert "<tb-webapp" in dom, "TensorBoard's app did not render"

    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", dom)))
    where = f"(DOM saved to {tmp_path / 'dom.html'})"

    # The run is listed (runs table and the cards' data tables).
    assert RUN in text, where
    # The filtered view: one card per info/ scalar tag.
    count = re.search(r"Tags matching filter\s+(\d+) cards?", text)
    assert count, where
    assert int(count.group(1)) == len(info_tags), where
    # The rendered cards are titled with info/ tags (the first page, lazily rendered).
    titles = re.findall(r'<tb-truncated-path[^>]*\btitle="(info/[^"]+)"', dom)
    assert titles, where
    assert set(titles) <= set(info_tags), titles
    assert any(t in EXPECTED_INFO_TAGS for t in titles), titles

    # Each rendered card's data table shows the run at its last step with the last value the
    # server holds for that card's tag (cards and tables are in the same order in the DOM).
    rows = re.findall(rf"{re.escape(RUN)} (-?[\d.]+(?:e-?\d+)?) (-?[\d.]+(?:e-?\d+)?) (\d+) ", text)
    assert len(rows) == len(titles), (rows, titles)
    for tag, (_, value, step) in zip(titles, rows, strict=True):
        query = urllib.parse.urlencode({"run": RUN, "tag": tag})
        _, last_step, last_value = _get_json(f"{base}/data/plugin/scalars/scalars?{query}")[-1]
        assert int(step) == last_step, (tag, step, last_step)
        assert abs(float(value) - last_value) <= 1e-3 * max(1.0, abs(last_value)), (
            tag,
            value,
            last_value,
        )
