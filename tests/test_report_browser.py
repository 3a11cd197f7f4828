"""report.html in a real browser: headless Chromium loads it offline and draws a full page.

Skipped where Debian's chromium is not installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from grader.report import write_student_reports
from tests.test_report_samples import crashed, eval_arrays, passing

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="no /usr/bin/chromium: install it with `apt-get install -y chromium`")


def _screenshot(page: Path, tmp: Path) -> tuple[Path, str]:
    shot = tmp / f"{page.parent.name}.png"
    run = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,2000", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
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
