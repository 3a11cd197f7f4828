"""Each adversarial script, named after what it tries, run in the sandbox: the flags say what stopped it,
the host shows nothing changed, and a normal run right after still works (checked after every test)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest

import grader
from grader.sandbox import SandboxResult, SandboxSpec, limits, run_sandboxed
from grader.sandbox.bwrap import GRADER_SRC_INSIDE
from tests.bound_paths import leading_into, shows_only_the_way_in

ADVERSARIAL = Path(__file__).parent / "fixtures" / "adversarial"
CHECKOUT = Path(grader.__file__).resolve().parents[1]

# Fails with the fix where bubblewrap is missing or refused (conftest.py): ./setup.sh installs it.
pytestmark = pytest.mark.usefixtures("bwrap")
needs_cgroup = pytest.mark.skipif(limits.detect().hierarchy is None,
                                  reason="no writable cgroup: rlimits cannot do this")


def run_fixture(tmp_path: Path, name: str, *args: str, sandbox: bool = True,
                **spec: object) -> tuple[SandboxResult, Path]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    shutil.copy(ADVERSARIAL / f"{name}.py", scratch)
    settings = {"wall_seconds": 5, **spec}
    return run_sandboxed([sys.executable, f"{name}.py", *args], SandboxSpec(scratch=scratch, **settings),
                         sandbox=sandbox), scratch


@pytest.fixture(autouse=True)
def then_a_normal_run_works(tmp_path: Path):
    yield
    scratch = tmp_path / "after"
    code = "open('out.txt', 'w').write('fine'); print('ok')"
    result = run_sandboxed([sys.executable, "-c", code], SandboxSpec(scratch=scratch, wall_seconds=30))
    assert (result.returncode, result.stdout, result.timed_out) == (0, "ok\n", False), result
    assert (scratch / "out.txt").read_text() == "fine"


@pytest.mark.parametrize("name", ["infinite_loop", "sleep_past_limit"])
def test_running_forever_is_killed_at_the_wall_clock(tmp_path: Path, name: str) -> None:
    result, _ = run_fixture(tmp_path, name, wall_seconds=2)
    assert result.timed_out and result.returncode is None
    assert 2 <= result.seconds < 5
    assert result.stdout.strip() in ("looping", "sleeping")  # output before the kill is kept


@pytest.mark.filterwarnings("ignore:running without the sandbox")
@pytest.mark.parametrize("sandbox", [True, pytest.param(False, marks=needs_cgroup)])
def test_never_finishing_tree_dies_whole_on_timeout(tmp_path: Path, sandbox: bool) -> None:
    # The heartbeat comes from a grandchild in its own session whose parent is
    # gone: neither the process group nor the parent chain reaches it.
    result, scratch = run_fixture(tmp_path, "never_finishes", sandbox=sandbox, wall_seconds=2)
    assert result.timed_out
    beats = (scratch / "heartbeat").stat().st_size
    time.sleep(0.5)
    assert beats > 5 and (scratch / "heartbeat").stat().st_size == beats


@needs_cgroup
def test_fork_bomb_hits_max_processes(tmp_path: Path) -> None:
    result, _ = run_fixture(tmp_path, "fork_bomb", max_processes=64)
    assert result.returncode == 3, result
    made = int(result.stdout.split("refused after ")[1].split(":")[0])
    assert 0 < made < 64
    assert not _host_processes_running("fork_bomb.py")  # the sleeping children went with the namespace


def test_memory_bomb_ends_with_memory_exceeded(tmp_path: Path) -> None:
    result, _ = run_fixture(tmp_path, "memory_bomb", memory_bytes=300 << 20)
    assert result.memory_exceeded and result.returncode != 0 and not result.timed_out
    assert "allocated everything" not in result.stdout


def test_memory_bomb_is_caught_by_rlimits_where_no_cgroup_is_writable(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "detect", lambda: limits.Detected(None, "disabled by the test"))
    result, _ = run_fixture(tmp_path, "memory_bomb", memory_bytes=300 << 20)
    assert result.memory_exceeded and result.returncode != 0
    assert result.limits_used.startswith("rlimit") and "CUDA" in result.limits_used


def test_filling_the_disk_stops_at_the_file_size_limit(tmp_path: Path) -> None:
    result, scratch = run_fixture(tmp_path, "fill_disk", max_file_bytes=50 << 20)
    assert result.returncode == 4 and "File too large" in result.stdout, result
    assert (scratch / "fill.bin").stat().st_size <= 50 << 20


def test_printing_gigabytes_keeps_a_bounded_head_and_tail(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        result, _ = run_fixture(tmp_path, "print_gigabytes", "100", max_output_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.returncode == 0 and result.output_truncated and not result.timed_out
    assert len(result.stdout) + len(result.stderr) < (1 << 20) + 200
    assert result.stdout.startswith("MB 0\n") and result.stdout.rstrip().endswith("THE END")
    assert "bytes of output dropped" in result.stdout and "bytes of output dropped" in result.stderr
    assert peak < 8 << 20  # the flood passed through, it was never held


@pytest.mark.parametrize("network", [False, True])
def test_sockets_reach_neither_the_internet_nor_the_host_loopback(tmp_path: Path, network: bool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result, _ = run_fixture(tmp_path, "open_socket", str(port), network=network)
    refused_loopback = f"refused 127.0.0.1:{port}" in result.stdout
    if network:  # the control: the same script does reach the host when allowed to
        assert not refused_loopback, result.stdout
    else:
        assert result.returncode == 0 and refused_loopback and "refused 1.1.1.1:80" in result.stdout, result.stdout


def test_grader_environment_is_invisible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("MNIST_GRADER_TEST_SECRET", secret)
    result, scratch = run_fixture(tmp_path, "read_environment")
    assert result.returncode == 0 and f"'HOME': '{scratch}'" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_home_and_checkout_are_invisible(tmp_path: Path) -> None:
    home, scratch = str(Path.home()), tmp_path / "scratch"
    result, _ = run_fixture(tmp_path, "list_host_folders", home, str(CHECKOUT), "/")
    seen = json.loads(result.stdout)
    # Only the paths that lead to what is bound may show: the interpreter (pyenv lives in root's home here; a
    # .venv made by ./setup.sh lives in the checkout), the scratch, the system folders. An error: not there at all.
    assert shows_only_the_way_in(seen[str(CHECKOUT)], str(CHECKOUT)), seen
    assert shows_only_the_way_in(seen[home], home, [scratch]), seen[home]
    system = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp", "opt"}
    assert set(seen["/"]) <= system | leading_into("/", [scratch]), seen["/"]


def test_writes_outside_scratch_fail_or_stay_private(tmp_path: Path) -> None:
    name = f"escaped-{uuid.uuid4().hex}"
    folders = ["/", "/usr", "/etc", "/tmp", str(Path.home()), sys.prefix, str(GRADER_SRC_INSIDE / "grader")]
    result, _ = run_fixture(tmp_path, "write_outside_scratch", name, *folders)
    outcome = json.loads(result.stdout)
    assert {p for p, o in outcome.items() if o == "written"} == {f"/tmp/{name}"}  # the private tmpfs
    host = [*folders, str(CHECKOUT / "grader")]
    assert not [f for f in host if os.path.lexists(os.path.join(f, name))]


def test_killing_its_parent_leaves_the_grader_alive(tmp_path: Path) -> None:
    result, _ = run_fixture(tmp_path, "kill_parent")
    # Inside, the parent is the namespace's init, which ignores signals from
    # its own namespace; the grader is not in it at all.
    assert result.returncode == 0 and "parent is 1" in result.stdout and "still alive" in result.stdout, result


def test_trusted_mode_warns_on_every_call_and_keeps_the_clock(tmp_path: Path) -> None:
    for _ in range(2):
        with pytest.warns(UserWarning, match="without the sandbox"):
            result, _ = run_fixture(tmp_path, "infinite_loop", sandbox=False, wall_seconds=1)
        assert result.timed_out


def _host_processes_running(script: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if script.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass
    return found


def test_the_kernels_settings_are_read_only(tmp_path: Path) -> None:
    # The sandbox uid is the grader's (root, where it runs as root): without the read-only binds the kernel would let
    # it open kernel.core_pattern for writing, and a crash would then run a program of its choosing as root.
    result, _ = run_fixture(tmp_path, "write_kernel_settings")
    outcome = json.loads(result.stdout)
    assert ("/proc/sys/kernel/core_pattern" in outcome
            and not [p for p, o in outcome.items() if o == "writable"]), outcome
