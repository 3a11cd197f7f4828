"""Fixtures and hooks shared by every test module.

What the sandbox tests need (the real MNIST, a working bubblewrap) is found the
way the product finds it, and its absence fails the test with the fix: a
machine set up with ./setup.sh has both, so a test that cannot run there is a
broken machine, never a pass. Under CI=true a skipped test fails the whole
run, unless it carries a marker that names a thing CI machines may lack
(`needs_gpu`, registered in pyproject.toml).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import grader
from grader.data import locate
from grader.data.fetch import ensure_mnist
from grader.errors import GraderError
from grader.sandbox import bwrap_available

# The four MNIST .gz files, kept beside the checkout (shared/data/mnist) so that CI never downloads.
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
# Markers whose tests may be skipped under CI=true: each names hardware or a service a CI machine may lack.
MAY_SKIP_IN_CI = ("needs_gpu",)


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    """The folder with the real MNIST files: $GRADER_DATA, else the user cache (where the product looks),
    else shared/data/mnist beside the checkout, else downloaded into the cache as `grade data fetch` does.

    The test fails, never skips, when none of these gives the files.
    """
    try:
        return locate.find_mnist() or locate.mnist_folder(SHARED_MNIST) or ensure_mnist()
    except GraderError as err:
        pytest.fail(f"the real MNIST files are needed and none could be found or downloaded:\n{err.render()}\n"
                    f"looked in: ${locate.ENV_VAR}, the cache {locate.cache_dir()}, {SHARED_MNIST}\n"
                    f"  -> run `python3 -m grader data fetch` (./setup.sh does), or set {locate.ENV_VAR} to a "
                    f"folder with the four MNIST files", pytrace=False)


@pytest.fixture(scope="session")
def bwrap(grading_environments) -> str:
    """The bubblewrap binary, checked to start a sandbox here; the test fails with the fix when it cannot.
    (With it come the grading environments the sandboxed kernels run in.)"""
    path = bwrap_available()
    if path is None:
        pytest.fail("bubblewrap (bwrap) is not installed, and every sandbox test needs it\n"
                    "  -> run ./setup.sh, or `sudo apt-get install -y bubblewrap`", pytrace=False)
    # The same namespaces the grader asks for: an installed bwrap can still be refused user namespaces.
    probe = subprocess.run([path, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.fail(f"{path} is installed but cannot start a sandbox here: {probe.stderr.strip() or probe.returncode}\n"
                    f"  -> allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or "
                    f"kernel.apparmor_restrict_unprivileged_userns=0), or run the tests in a container that "
                    f"permits them", pytrace=False)
    return path


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_gpu"):
        import torch  # only where such a test runs: the import takes seconds

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU, and torch sees none here")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


# "nodeid: reason" of each skip that CI does not allow, in the order they happened.
_SKIPPED_IN_CI: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and not set(MAY_SKIP_IN_CI) & set(report.keywords):
        _SKIPPED_IN_CI.append(f"{report.nodeid}: {_reason(report)}")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module skipped as a whole (pytest.skip at import, importorskip) has no test report.
    if report.skipped:
        _SKIPPED_IN_CI.append(f"{report.nodeid}: {_reason(report)}")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    # A skip's longrepr is (file, line, "Skipped: why").
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _in_ci() and _SKIPPED_IN_CI and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _in_ci() and _SKIPPED_IN_CI:
        terminalreporter.write_sep("=", f"CI=true: {len(_SKIPPED_IN_CI)} skipped test(s) fail this run", red=True)
        for line in _SKIPPED_IN_CI:
            terminalreporter.write_line(f"SKIPPED {line}", red=True)
        terminalreporter.write_line(
            "A CI run must run every test: give the machine what each reason names (./setup.sh installs "
            "bubblewrap and MNIST, ./test.sh Chromium and the test dependencies), or mark a test that needs "
            "hardware CI machines may lack with one "
            "of: " + ", ".join(f"@pytest.mark.{m}" for m in MAY_SKIP_IN_CI) + ".")


# Rubrics whose grading environment the tests run kernels in (the shipped ones share the default environment),
# found from the checkout the grader is imported from.
CHECKOUT = Path(grader.__file__).resolve().parents[1]
TEST_ENVIRONMENTS = (CHECKOUT / "rubrics" / "mnist-s3.yaml",
                     CHECKOUT / "tests" / "fixtures" / "handed_in" / "keras-eip.yaml")


@pytest.fixture(scope="session")
def grading_environments() -> None:
    """The grading environments the tests' kernels run in, built through the product as `grade env build` does
    (./setup.sh builds the default one; when they are built this does nothing). A build that fails fails the tests.
    Every sandbox test has them through the `bwrap` fixture."""
    from grader.env.build import build
    from grader.env.spec import DEFAULT_ENVIRONMENT
    from grader.rubric.load import load_rubric

    for path in TEST_ENVIRONMENTS:
        rubric = load_rubric(path)
        try:
            build(rubric.environment or DEFAULT_ENVIRONMENT, path.parent)
        except GraderError as err:
            pytest.fail(f"the grading environment of {path.name} could not be built:\n{err.render()}\n"
                        f"  -> run `python3 -m grader env build {path}` and read its output", pytrace=False)


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (tests/pg_server.py)."""
    from tests.pg_server import postgres_server

    with postgres_server() as server:
        yield server
