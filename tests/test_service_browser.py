"""A student in headless Chromium: opens the assignment in the LMS (the platform stand-in), lands on our
upload page through the LTI 1.3 launch, uploads a notebook and its exported model, waits on the page that
refreshes itself, and sees the score and the report's plots; the LMS receives the grade."""

from __future__ import annotations

import pytest

from tests.fixtures.service.browser import CHROMIUM, Browser
from tests.fixtures.service.harness import ADA, start_server
from tests.fixtures.service.platform import Platform

PLOTS = """(() => {
  const frame = document.querySelector('#report');
  const doc = frame && frame.contentDocument;
  if (!doc || doc.readyState !== 'complete') return 0;
  return [...doc.images].filter(i => i.src.startsWith('data:image/png') && i.complete && i.naturalWidth > 100).length;
})()"""


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(f"no {CHROMIUM}, and the browser test needs it\n  -> run ./test.sh (it installs Chromium), or "
                    f"`sudo apt-get install -y chromium`", pytrace=False)
    return CHROMIUM


def test_a_student_hands_in_from_the_lms_and_sees_the_score_and_plots(tmp_path, chromium, real_mnist_dir, bwrap):
    with Platform() as platform:
        platform.assignment = "svc-evaluate"  # graded from the exported model: the report has its plots
        (tmp_path / "platforms.yaml").write_text(platform.registration())
        with start_server(tmp_path / "server", "--lti", str(tmp_path / "platforms.yaml"),
                          env={"GRADER_DATA": str(real_mnist_dir)}) as server, \
                Browser(tmp_path / "profile", chromium) as browser:
            platform.tool_url = server.url
            page = browser.page()
            page.goto(f"{platform.url}/launch?user=dan")  # the student clicks the assignment in the course
            page.wait_for("!!document.querySelector('input[name=notebook]')", what="the upload page")
            assert "Signed in from your course as Dan" in page.evaluate("document.body.innerText")
            assert page.evaluate("location.pathname") == "/lti/launch"
            page.set_files("input[name=notebook]", ADA / "notebook.ipynb")
            page.set_files("input[name=model]", ADA / "model.pt2")
            page.evaluate("document.querySelector('button[type=submit]').click()")
            page.wait_for("location.pathname.startsWith('/submissions/')", what="the submission's page")
            page.wait_for("document.querySelector('#status').dataset.status === 'graded'", timeout=180,
                          what="the grade (the page refreshes itself)")
            assert page.evaluate("document.querySelector('#score').textContent") == "85 / 85 points"
            plots = page.wait_for(PLOTS, what="the report's plots")
            assert plots >= 2  # the confusion matrix and per-class accuracy, at least
            shot = page.screenshot(tmp_path / "graded.png")
            assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
            score = platform.wait_scores(1)[0]["body"]
    assert (score["userId"], score["scoreGiven"], score["scoreMaximum"]) == ("user-dan", 85, 85)
