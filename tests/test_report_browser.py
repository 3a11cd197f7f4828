"""report.html in a real browser: headless Chromium loads it offline and draws a full page.

Skipped where Debian's chromium is not installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import re
import subprocess
from html import unescape
from pathlib import Path

import pytest

from grader.report import write_student_reports
from grader.report.summary import build_view
from tests.test_report_errors import ZERO_DIM, crashed_run  # noqa: F401 (a fixture: the real crashing run)
from tests.test_report_samples import crashed, eval_arrays, passing

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="no /usr/bin/chromium: install it with `apt-get install -y chromium`")


def _chromium(page: Path, tmp: Path, *what: str) -> subprocess.CompletedProcess:
    """Headless Chromium, offline and with a profile of its own, doing `what` (--screenshot, --dump-dom) to page."""
    run = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
         *what, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def _screenshot(page: Path, tmp: Path) -> tuple[Path, str]:
    shot = tmp / f"{page.parent.name}.png"
    run = _chromium(page, tmp, f"--screenshot={shot}", "--window-size=1200,2000")
    return shot, run.stderr


@pytest.mark.parametrize("who", ["passing", "crashed"])
def test_the_report_renders_in_headless_chromium(tmp_path, who):
    facts, sheet = passing() if who == "passing" else crashed()
    images, labels, predictions = eval_arrays(real=True)
    paths = write_student_reports(tmp_path / "out", who, facts, sheet, images=images, labels=labels,
                                  predictions=predictions, execution_time=1.0)
    shot, log = _screenshot(paths["html"], tmp_path)
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert "net::ERR_" not in log and "Uncaught" not in log  # nothing fetched, nothing failed to load


def test_chromium_renders_the_crashing_student_s_error_and_the_one_sentence_summary(crashed_run, tmp_path):
    """The issue's must-show: the DOM Chromium builds from a real crashing run's report.html holds the error
    (type and message), the one sentence about its predictions, and a verdict box in red, not green."""
    facts, sheet, paths = crashed_run
    dom = unescape(_chromium(paths["html"], tmp_path, "--dump-dom").stdout)
    error = re.search(r'<p class="error-line" id="error">(.*?)</p>', dom, re.S).group(1)
    assert error.startswith(f"{ZERO_DIM}. Use `tensor.item()`")
    summary = re.search(r'<p class="predictions" id="predictions">(.*?)</p>', dom, re.S).group(1)
    assert summary == build_view(facts, sheet, student="s").evaluation.predictions
    assert summary.startswith("The model predicts ") and "chance level" in summary
    assert re.search(r'<section class="card verdict (\w+)" id="verdict">', dom).group(1) == "bad"
    assert re.search(r"\.verdict\.bad \{ border-left-color: var\(--bad\)", dom)  # red, never the green
