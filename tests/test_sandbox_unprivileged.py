"""No sandbox runs as root on the host, and a grader that is not root still grades.

A root grader starts bwrap as an unprivileged uid (grader.sandbox.identity); a grader that is a normal user gets job
cgroups under a folder delegated to it, or rlimits where there is none, and says which (grader.sandbox.limits).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import grader
from grader.errors import GraderError
from grader.evaluate.warm import WarmEvaluator
from grader.sandbox import SandboxSpec, identity, limits, run_sandboxed
from grader.sandbox.bwrap import HostLayout, sandbox_command
from grader.sandbox.identity import DEFAULT_UID, SandboxUser, sandbox_user, stage_point
from grader.settings import RunLimits
from tests.unprivileged import unprivileged_user

pytestmark = pytest.mark.usefixtures("bwrap")

CHECKOUT = Path(grader.__file__).resolve().parents[1]
ROOT = os.geteuid() == 0
# What a sandboxed process tries as root would: make a file, read a root-only file bound in, write a sysctl.
TRIES_ROOTS_POWERS = """
import os, sys
open("made", "w").write("x")
for path, mode in ((sys.argv[1], "r"), ("/proc/sys/kernel/core_pattern", "w")):
    try:
        with open(path, mode) as f:
            print("OPENED", path, f.read() if mode == "r" else "")
    except OSError as e:
        print("REFUSED", path, e.errno)
"""


def test_a_sandboxed_command_is_not_root_to_the_host(tmp_path: Path) -> None:
    secret = tmp_path / "private" / "secret"
    secret.parent.mkdir()
    secret.write_text("root's eyes only")
    secret.chmod(0o600)  # owned by the grader: root where the tests run as root
    scratch = tmp_path / "job"  # under pytest's 0700 folder: the sandbox uid reaches it only through the stage
    result = run_sandboxed([sys.executable, "-c", TRIES_ROOTS_POWERS, "/opt/secret"],
                           SandboxSpec(scratch=scratch, ro_binds=((secret, Path("/opt/secret")),)))
    assert result.returncode == 0, result.stderr
    owner = os.stat(scratch / "made").st_uid
    assert owner != 0 and owner == (DEFAULT_UID if ROOT else os.geteuid())
    assert "OPENED" not in result.stdout and result.stdout.count("REFUSED") == 2, result.stdout
    expected = ("sandbox as host uid 65534 gid 65534 (the grader runs as root)" if ROOT
                else f"grader's own uid {os.geteuid()}")
    assert expected in result.limits_used
    if ROOT:  # the secret was shown to the sandbox but its host uid has no right to read it
        assert f"REFUSED /opt/secret {13}" in result.stdout


def test_the_host_still_reads_and_removes_what_the_sandbox_wrote(tmp_path: Path) -> None:
    scratch = tmp_path / "job"
    (scratch / "out").mkdir(parents=True)  # made by the host before the run, written by the sandbox
    (scratch / "job.json").write_text("{}")
    result = run_sandboxed([sys.executable, "-c",
                            "open('out/run.json','w').write('{\"ok\": 1}'); open('job.json').read()"],
                           SandboxSpec(scratch=scratch))
    assert result.returncode == 0, result.stderr
    assert json.loads((scratch / "out" / "run.json").read_text()) == {"ok": 1}
    for path in (scratch, scratch / "out", scratch / "job.json"):
        assert path.lstat().st_uid == sandbox_user().uid
    assert not os.listdir(stage_point()), "the stage must stay empty on the host"


def test_threads_asking_for_the_stage_point_at_once_get_one_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def slow_mkdtemp(*args: object, **kwargs: object) -> str:
        time.sleep(0.05)  # widens the window two threads once both went through
        made.append(real_mkdtemp(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(identity.tempfile, "mkdtemp", slow_mkdtemp)
    not_a_pid = 2**31 + 7  # a key of its own: its atexit removal never runs, the test removes the folder
    points: list[str] = []
    threads = [threading.Thread(target=lambda: points.append(identity._stage_point_of(not_a_pid))) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(points)) == 1 and len(made) == 1, made
    finally:
        for folder in made:
            os.rmdir(folder)


def test_stage_points_of_gone_processes_are_swept_when_old_and_empty(tmp_path: Path) -> None:
    gone = 2**22 + 1  # above pid_max's default ceiling: no process has it
    old = time.time() - 2 * 24 * 3600
    folders = {name: tmp_path / name for name in (f"mnist-grader-stage-{gone}-old", f"mnist-grader-stage-{gone}-new",
                                                  f"mnist-grader-stage-{os.getpid()}-alive",
                                                  f"mnist-grader-stage-{gone}-full", "mnist-grader-stage-nopid")}
    for name, folder in folders.items():
        folder.mkdir()
        if name.endswith("full"):
            (folder / "3").mkdir()
        if not name.endswith("new"):
            os.utime(folder, (old, old))
    identity._remove_orphaned_stage_points(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(folders) - {f"mnist-grader-stage-{gone}-old"})


@pytest.mark.skipif(not ROOT, reason="only a root grader stages sources for another uid")
def test_sandboxes_started_from_many_threads_at_once_leave_the_stage_empty(tmp_path: Path) -> None:
    # Several grading threads asking for the stage point at once once got two folders: a launch mounted its tmpfs
    # on one and made a later source's mount point on the host's disk, in the other.
    private = tmp_path / "private"  # 0700 under root's pytest folder: the sandbox uid cannot reach it, so it is staged
    private.mkdir()
    (private / "data.txt").write_text("seen")
    sources = [private / f"s{i}" for i in range(4)]
    for source in sources:
        source.mkdir()
    results: list[object] = []
    start = threading.Barrier(6)

    def one(n: int) -> None:
        start.wait()
        binds = tuple((source, Path(f"/opt/s{i}")) for i, source in enumerate(sources))
        results.append(run_sandboxed([sys.executable, "-c",
                                      "import os; print(sum(os.path.isdir(f'/opt/s{i}') for i in range(4)))"],
                                     SandboxSpec(scratch=tmp_path / f"job{n}", ro_binds=binds)))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]  # type: ignore[attr-defined]
    assert all(r.stdout.strip() == "4" for r in results), [r.stdout for r in results]  # type: ignore[attr-defined]
    assert not os.listdir(stage_point()), "the stage must stay empty on the host"


def test_a_file_with_two_names_is_not_handed_over(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("host file")
    scratch = tmp_path / "job"
    scratch.mkdir()
    os.link(outside, scratch / "alias")
    run_sandboxed([sys.executable, "-c", "pass"], SandboxSpec(scratch=scratch))
    assert outside.stat().st_uid == os.geteuid()


def test_an_unusable_sandbox_uid_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_SANDBOX_UID", "0")
    if not ROOT:  # a normal user's sandbox is its own uid, whatever the variable says
        assert sandbox_user() == SandboxUser(os.geteuid(), os.getegid(), dropped=False)
        return
    with pytest.raises(GraderError) as err:
        sandbox_user()
    assert "GRADER_SANDBOX_UID='0' is not a usable id" in err.value.render() and "unset it" in err.value.render()
    monkeypatch.setenv("GRADER_SANDBOX_UID", "4242")
    assert (sandbox_user().uid, sandbox_user().gid) == (4242, 4242)


def test_a_gpu_node_open_only_to_its_group_keeps_that_group(tmp_path: Path) -> None:
    """Hosts where /dev/nvidia* are 0660 root:video: the sandbox uid keeps that one group, or the GPU is gone."""
    node = tmp_path / "nvidia0"
    node.write_text("")
    node.chmod(0o660)
    if ROOT:
        os.chown(node, 0, 44)
    open_to_all = tmp_path / "nvidiactl"
    open_to_all.write_text("")
    open_to_all.chmod(0o666)
    layout = HostLayout(**{**HostLayout.detect().__dict__, "gpu_nodes": (str(open_to_all), str(node))})
    _, launch = sandbox_command(["true"], SandboxSpec(scratch=tmp_path / "job", gpu=True), bwrap="bwrap", layout=layout)
    assert launch.groups == ((44,) if ROOT else ())
    _, launch = sandbox_command(["true"], SandboxSpec(scratch=tmp_path / "job", gpu=False), bwrap="bwrap",
                                layout=layout)
    assert launch.groups == ()


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def _uids(pid: int) -> tuple[int, ...]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return tuple(int(u) for u in line.split()[1:])
    raise AssertionError(f"no Uid line for {pid}")


def test_the_warm_zygote_and_every_child_it_forks_are_not_root(tmp_path: Path) -> None:
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((16, 28, 28), dtype=np.uint8))
    script = tmp_path / "waits.py"
    script.write_text("import time\ntime.sleep(6)\n")
    evaluator = WarmEvaluator(images, limits=RunLimits())
    try:
        done = threading.Thread(target=evaluator.run_script, args=(script, []),
                                kwargs={"limits": RunLimits(eval_seconds=30)})
        done.start()
        seen: dict[int, tuple[int, ...]] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(seen) < 6:  # bwrap x2, zygote, trusted child, measuring child
            pid = evaluator.zygote_pid()
            for member in _tree(pid) if pid else ():
                try:
                    seen[member] = _uids(member)
                except OSError:
                    pass
            time.sleep(0.2)
        done.join()
    finally:
        evaluator.close()
    assert len(seen) >= 5, seen
    expected = DEFAULT_UID if ROOT else os.geteuid()
    assert all(set(uids) == {expected} for uids in seen.values()), seen


# --- limits as a normal user ---------------------------------------------------------------------------------

AS_USER = """
import json, sys
from pathlib import Path
from grader.sandbox import limits, run_sandboxed, SandboxSpec
mounts, own = sys.argv[1:3]
if mounts != "-":
    limits._MOUNTS, limits._OWN = Path(mounts), Path(own)
found = limits.detect.__wrapped__()
report = {"parent": str(found.hierarchy.memory) if found.hierarchy else None, "reason": found.reason}
if mounts == "-":  # this host's cgroups: a job, and a sandboxed command under it
    with limits.JobLimits(memory_bytes=1 << 30, max_processes=64, max_file_bytes=1 << 20, detected=found) as job:
        report["used"] = job.used
    ran = run_sandboxed([sys.executable, "-c", "print('graded')"], SandboxSpec(scratch=Path(sys.argv[3])))
    report["ran"] = [ran.returncode, ran.stdout, ran.stderr[-500:], ran.limits_used]
print(json.dumps(report))
"""


def _as_user(user, tmp_path: Path, *argv: str) -> dict:
    run = user.run([sys.executable, "-c", AS_USER, *argv], env={"PYTHONPATH": str(CHECKOUT), "HOME": str(tmp_path)},
                   cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout.splitlines()[-1])


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A folder any user can enter (pytest's tmp_path lies in root's 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="mnist-grader-user-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_normal_user_grades_after_root_made_the_cgroups(user_dir: Path) -> None:
    """On this machine root's `mnist-grader` cgroup parents exist (made by every root run of the tests): a normal user
    may not write there, so its jobs fall back, saying why, and still run."""
    limits.JobLimits(memory_bytes=1 << 30, max_processes=64, max_file_bytes=1 << 20).close()  # root's, if root
    home = user_dir / "home"
    with unprivileged_user(home) as user:
        found = _as_user(user, home, "-", "-", str(home / "job"))
    if found["parent"] is None:
        assert found["used"].startswith("rlimit (") and "not suitable for CUDA" in found["used"], found
    else:  # a folder delegated to this user
        assert os.stat(found["parent"]).st_uid == user.uid, found
    returncode, stdout, stderr, used = found["ran"]
    assert (returncode, stdout.strip()) == (0, "graded"), stderr
    assert f"sandbox as the grader's own uid {user.uid}" in used


def test_a_delegated_cgroup_folder_is_used_and_a_root_made_parent_passed_over(user_dir: Path) -> None:
    """A systemd user manager's subtree, on a fake cgroup v2 tree: the top-level parent was made by root, the user's
    own slice is delegated to it; the jobs go under the slice."""
    tmp_path = user_dir
    unified = tmp_path / "cg"
    slice_ = unified / "user.slice" / "user@1.service"
    (slice_ / "app.slice" / "shell.scope").mkdir(parents=True)
    (unified / "cgroup.controllers").write_text("cpu memory pids\n")
    for level in (unified, unified / limits.PARENT, slice_, slice_ / limits.PARENT):
        level.mkdir(exist_ok=True)
        (level / "cgroup.subtree_control").write_text("\n")
        (level / "cgroup.procs").write_text("")
    (tmp_path / "mounts").write_text(f"cgroup2 {unified} cgroup2 rw,relatime 0 0\n")
    (tmp_path / "own").write_text("0::/user.slice/user@1.service/app.slice/shell.scope\n")
    (unified / limits.PARENT).chmod(0o555)  # made by root on an earlier run: nobody else may write there
    with unprivileged_user(tmp_path / "home") as user:
        for path in (slice_, *slice_.rglob("*")):
            os.chown(path, user.uid, user.gid)
        found = _as_user(user, tmp_path / "home", str(tmp_path / "mounts"), str(tmp_path / "own"), "-")
    (unified / limits.PARENT).chmod(0o755)
    assert found["parent"] == str(slice_ / limits.PARENT), found
    assert (slice_ / limits.PARENT / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_a_cgroup_that_cannot_be_made_falls_back_to_rlimits(tmp_path: Path) -> None:
    """The hierarchy looked writable when detected, and then making the job's folder failed (here: the parent is a
    file): the job runs under rlimits and says why, it does not fail the student."""
    parent = tmp_path / "not-a-folder"
    parent.write_text("")
    detected = limits.Detected(limits.Hierarchy(2, parent, parent), "")
    with limits.JobLimits(memory_bytes=1 << 30, max_processes=64, max_file_bytes=1 << 20, detected=detected) as job:
        assert job.hierarchy is None
        assert job.used.startswith(f"rlimit (the job's cgroup could not be made under {parent}: ")
        assert job.memory_exceeded("MemoryError")


def test_the_stale_sweep_skips_what_it_may_not_remove(tmp_path: Path) -> None:
    stale = tmp_path / "job-999999999-deadbeef"
    (stale / "inside").mkdir(parents=True)  # not empty: rmdir refuses, as for another user's folder
    assert limits._sweep_stale.__wrapped__((tmp_path, tmp_path / "missing")) == 0
    assert stale.exists()



def test_a_private_tmpdir_does_not_lock_the_sandbox_uid_out(tmp_path: Path) -> None:
    """TMPDIR from `mktemp -d` (0700, as pytest's own) must not hold the stage the sandbox uid binds from: the
    stage goes to the first temporary folder every uid can enter, and a sandbox starts as usual."""
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    script = ("import sys, pathlib\n"
              "from grader.sandbox import SandboxSpec, run_sandboxed\n"
              "from grader.sandbox.identity import stage_point\n"
              "result = run_sandboxed([sys.executable, '-c', 'print(41 + 1)'], "
              f"SandboxSpec(scratch={str(tmp_path / 'job')!r}))\n"
              "print(result.returncode, result.stdout.strip(), stage_point(), result.stderr[-300:])\n")
    env = {**os.environ, "TMPDIR": str(private)}
    done = subprocess.run([sys.executable, "-c", script], cwd=CHECKOUT, env=env, capture_output=True,
                          text=True, timeout=120)
    code, printed, point = done.stdout.split()[:3]
    assert (code, printed) == ("0", "42"), done.stdout + done.stderr
    if ROOT:  # a normal user's bwrap runs as itself: its private TMPDIR is its own to enter
        assert not point.startswith(str(private)) and Path(point).parent == Path("/tmp"), point
