"""The README's two commands on a fresh machine: the tests find MNIST where the product does (or fail
saying how to get it, never skip), a CI run fails on a skipped test, and the sandbox works from a venv
under /tmp.

The conftest cases run pytest in a child process on a copy of tests/conftest.py placed where no
../shared exists, with its own cache folder: the situation of a fresh clone set up with ./setup.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pydantic
import pytest

import grader
from grader.data.locate import FILE_NAMES
from grader.errors import GraderError
from grader.sandbox.bwrap import HostLayout, SandboxSpec, _python_roots, build_argv

CHECKOUT = Path(grader.__file__).resolve().parents[1]
CONFTEST = Path(__file__).with_name("conftest.py")

USES_MNIST = """
def test_finds_mnist(real_mnist_dir):
    print("MNIST AT", real_mnist_dir)
"""


def child_pytest(tmp_path: Path, files: dict[str, str], **env: str) -> subprocess.CompletedProcess:
    """pytest on `files` beside a copy of conftest.py, in tmp_path/clone/tests (so ../../shared does not exist),
    with the project's pytest settings and an environment without $GRADER_DATA or $CI unless given."""
    tests = tmp_path / "clone" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests)
    for name, text in files.items():
        (tests / name).write_text(text)
    environ = {k: v for k, v in os.environ.items() if k not in ("GRADER_DATA", "CI", "PYTEST_ADDOPTS")}
    environ.update({"PYTHONPATH": str(CHECKOUT), "XDG_CACHE_HOME": str(tmp_path / "cache"), **env})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--strict-markers",
                           "-c", str(CHECKOUT / "pyproject.toml"), "--rootdir", str(tests.parent), str(tests)],
                          capture_output=True, text=True, cwd=tests.parent, env=environ, timeout=300)


def test_mnist_in_the_user_cache_is_found_without_shared(real_mnist_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "mnist-grader" / "mnist"
    cache.mkdir(parents=True)
    for name in FILE_NAMES:  # where `grade data fetch` puts them
        source = real_mnist_dir / f"{name}.gz"
        (cache / source.name).symlink_to(source if source.exists() else real_mnist_dir / name)
    run = child_pytest(tmp_path, {"test_uses_mnist.py": USES_MNIST})
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"MNIST AT {cache}" in run.stdout and "1 passed" in run.stdout


def test_grader_data_comes_first_and_a_wrong_one_fails_with_the_products_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = child_pytest(tmp_path, {"test_uses_mnist.py": USES_MNIST}, GRADER_DATA=str(empty))
    assert run.returncode == 1 and "1 error" in run.stdout and "skipped" not in run.stdout, run.stdout
    assert "the folder $GRADER_DATA names has no MNIST" in run.stdout
    assert "-> run `python3 -m grader data fetch`" in run.stdout


def test_without_mnist_anywhere_it_is_fetched_and_if_that_fails_the_test_fails(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    # The cache lies under a file, so the download fails at once, before any network: the failure path.
    run = child_pytest(tmp_path, {"test_uses_mnist.py": USES_MNIST}, XDG_CACHE_HOME=str(tmp_path / "not-a-folder"))
    assert run.returncode == 1 and "1 error" in run.stdout and "skipped" not in run.stdout, run.stdout
    assert "MNIST is not on this machine yet: downloading it into" in run.stdout + run.stderr
    assert "cannot create the folder" in run.stdout
    assert f"looked in: $GRADER_DATA, the cache {tmp_path / 'not-a-folder'}/mnist-grader/mnist" in run.stdout


SKIPS = {
    "test_skips.py": """
import pytest

def test_runs():
    pass

def test_skipped_for_want_of_something():
    pytest.skip("no chromium here")

@pytest.mark.needs_gpu
def test_on_the_gpu():
    pytest.skip("no GPU here")
""",
    "test_skipped_module.py": """
import pytest
pytest.importorskip("no_such_module_for_the_ci_check")
""",
}


def test_under_ci_a_skipped_test_fails_the_run_and_is_listed(tmp_path: Path) -> None:
    run = child_pytest(tmp_path, SKIPS, CI="true")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed, 3 skipped" in run.stdout
    assert "CI=true: 2 skipped test(s) fail this run" in run.stdout
    assert "SKIPPED tests/test_skips.py::test_skipped_for_want_of_something: no chromium here" in run.stdout
    assert "SKIPPED tests/test_skipped_module.py: could not import 'no_such_module_for_the_ci_check'" in run.stdout
    assert "test_on_the_gpu:" not in run.stdout.split("fail this run", 1)[1]  # needs_gpu may skip


def test_outside_ci_skips_are_only_reported(tmp_path: Path) -> None:
    run = child_pytest(tmp_path, SKIPS)
    assert run.returncode == 0 and "1 passed, 3 skipped" in run.stdout, run.stdout + run.stderr
    assert "fail this run" not in run.stdout


def test_the_tmp_tmpfs_is_mounted_before_an_interpreter_that_lives_under_tmp(tmp_path: Path) -> None:
    layout = HostLayout(links={}, dirs=("/usr",), python_roots=("/tmp/venv", "/opt/python"), private_etc=(),
                        gpu_nodes=(), grader_src="/tmp/checkout")
    argv = build_argv(["python", "run.py"], SandboxSpec(scratch=tmp_path), layout=layout)
    tmpfs = argv.index("/tmp", argv.index("--tmpfs"))
    for root in ("/tmp/venv", "/opt/python", "/tmp/checkout/grader"):
        assert argv.index(root) > tmpfs, root


def test_a_program_the_sandbox_does_not_show_is_named_with_the_fix(tmp_path: Path) -> None:
    scratch, elsewhere = tmp_path / "scratch", tmp_path / "elsewhere"
    scratch.mkdir()
    elsewhere.mkdir()
    (elsewhere / "python3").symlink_to(sys.executable)
    layout = HostLayout.detect()
    with pytest.raises(GraderError) as raised:
        build_argv([str(elsewhere / "python3"), "-c", "pass"], SandboxSpec(scratch=scratch), layout=layout)
    err = raised.value
    assert err.where == str(elsewhere / "python3")
    assert err.what.startswith(f"{elsewhere / 'python3'} cannot run in the sandbox: {elsewhere / 'python3'} "
                               "is not shown")
    assert "run the grader itself with the Python the sandbox should use" in err.fix
    # Shown itself (in the scratch) but leading through a link to a hidden place: that place is named.
    (scratch / "python3").symlink_to(elsewhere / "python3")
    with pytest.raises(GraderError, match=f"{elsewhere / 'python3'} \\(where {scratch / 'python3'} leads through"):
        build_argv([str(scratch / "python3")], SandboxSpec(scratch=scratch), layout=layout)


def test_a_prefix_of_slash_is_never_bound_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("prefix", "base_prefix", "exec_prefix", "base_exec_prefix"):
        monkeypatch.setattr(sys, name, "/")
    monkeypatch.setattr("site.getsitepackages", lambda: ["/usr/lib/python3/dist-packages"])
    assert _python_roots(("/usr",)) == ()


INSIDE = """
import json, os, sys
from pathlib import Path
from grader.sandbox import SandboxSpec, run_sandboxed

probe = "import json, os, socket, sys, numpy; print(json.dumps([sys.prefix, os.getuid(), socket.gethostname()]))"
result = run_sandboxed([sys.executable, "-c", probe], SandboxSpec(scratch=Path(sys.argv[1]), wall_seconds=120))
print(json.dumps({"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}))
"""


@pytest.mark.usefixtures("bwrap")
def test_the_sandbox_runs_from_a_venv_under_tmp() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="grader-venv-test-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        # The grader's dependencies, installed in the venv as pip would: hard links to the files of the folder
        # that holds them here (a pyenv's site-packages, or that of the .venv ./setup.sh made), a few seconds.
        site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
        site.rmdir()
        subprocess.run(["cp", "-al", str(Path(pydantic.__file__).resolve().parents[1]), str(site)], check=True,
                       timeout=300)
        python = venv / "bin" / "python"
        env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
        run = subprocess.run([str(python), "-c", INSIDE, str(Path(tmp) / "scratch")], capture_output=True,
                             text=True, env=env, cwd=tmp, timeout=300)
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout.splitlines()[-1])
        assert result["returncode"] == 0, result["stderr"]
        prefix, uid, hostname = json.loads(result["stdout"])
        # The venv's own interpreter ran (it found its pyvenv.cfg), inside bubblewrap (its uid and host name).
        assert (prefix, uid, hostname) == (str(venv), 65534, "sandbox")
