"""The scratch folder's disk quota: a file system of its own whose size and file count the kernel enforces.

Each hostile script (tests/fixtures/adversarial) is named after what it tries: writing to a file it has deleted,
making empty files by the thousand, leaving a tree that would hurt a careless copy. Each ends inside its quota
with `disk_exceeded`; an honest command, and staged data bound into the scratch, are not affected; what a job
leaves is back on disk for the host to read. Then the same as an unprivileged user, and the honest fallback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.sandbox import SandboxResult, SandboxSpec, disk, limits, run_sandboxed, scratchfs
from grader.sandbox.scratchfs import ScratchFSError

ADVERSARIAL = Path(__file__).parent / "fixtures" / "adversarial"
OWN_FS = "disk: a file system of its own"

pytestmark = pytest.mark.usefixtures("bwrap")
needs_cgroup = pytest.mark.skipif(limits.detect().hierarchy is None,
                                  reason="no writable cgroup: rlimits cannot do this")


def run_fixture(tmp_path: Path, name: str, *args: str, **spec: object) -> tuple[SandboxResult, Path]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copy(ADVERSARIAL / f"{name}.py", scratch)
    settings = {"wall_seconds": 60, **spec}
    return run_sandboxed([sys.executable, f"{name}.py", *args], SandboxSpec(scratch=scratch, **settings)), scratch


def most_got(output: str, unit: str) -> int:
    """The largest `got N <unit>` a fixture printed before it was stopped."""
    return max((int(n) for n in re.findall(rf"got (\d+) {unit}", output)), default=0)


def test_writing_to_a_deleted_file_stops_at_the_disk_quota(tmp_path: Path) -> None:
    result, scratch = run_fixture(tmp_path, "write_to_a_deleted_file", "2048", disk_bytes=50 << 20)
    assert result.disk_exceeded and result.returncode is None, result
    assert most_got(result.stdout, "MB") == 50, result.stdout
    assert f"{OWN_FS}, 50M and 10,000 files (the kernel refuses writes past either)" in result.limits_used
    assert sorted(p.name for p in scratch.iterdir()) == ["write_to_a_deleted_file.py"]  # copied back, nothing hidden


def test_twenty_thousand_empty_files_stop_at_the_file_budget(tmp_path: Path) -> None:
    result, scratch = run_fixture(tmp_path, "make_empty_files", "20000", disk_bytes=50 << 20, disk_files=1000)
    assert result.disk_exceeded and result.returncode is None, result
    # the folder itself does not count; the script and the folder `many` do
    assert 900 <= most_got(result.stdout, "files") <= 998, result.stdout
    assert len(os.listdir(scratch / "many")) == 998


def test_an_honest_command_under_the_quota_is_unaffected(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "given").mkdir(parents=True)
    (scratch / "given" / "job.json").write_text('{"from": "the host"}')
    code = textwrap.dedent("""
        import json, os
        job = json.load(open("given/job.json"))
        os.makedirs("out/deeper")
        with open("out/deeper/model.bin", "wb") as f:
            f.write(os.urandom(5 << 20))
        with open("out/run.sh", "w") as f:
            f.write("#!/bin/sh\\n")
        os.chmod("out/run.sh", 0o755)
        print(job["from"], os.statvfs(".").f_files)
    """)
    result = run_sandboxed([sys.executable, "-c", code], SandboxSpec(scratch=scratch, wall_seconds=60,
                                                                     disk_bytes=50 << 20, disk_files=100))
    assert (result.returncode, result.disk_exceeded, result.stdout) == (0, False, "the host 101\n"), result
    assert (scratch / "out" / "deeper" / "model.bin").stat().st_size == 5 << 20
    assert stat.S_IMODE((scratch / "out" / "run.sh").stat().st_mode) == 0o755
    assert json.loads((scratch / "given" / "job.json").read_text()) == {"from": "the host"}


def test_staged_data_bound_into_the_scratch_does_not_count(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "big.bin").write_bytes(b"\3" * (80 << 20))
    for i in range(200):
        (staged / f"{i}.txt").write_text("x")
    scratch = tmp_path / "scratch"
    code = "import os; print(len(open('data/big.bin', 'rb').read()), len(os.listdir('data')))"
    result = run_sandboxed([sys.executable, "-c", code],
                           SandboxSpec(scratch=scratch, ro_binds=((staged, scratch / "data"),), wall_seconds=60,
                                       disk_bytes=50 << 20, disk_files=20))
    assert (result.returncode, result.disk_exceeded, result.stdout) == (0, False, f"{80 << 20} 201\n"), result


def test_a_hostile_tree_is_copied_back_without_harm(tmp_path: Path) -> None:
    started = time.monotonic()
    result, scratch = run_fixture(tmp_path, "leave_a_hostile_tree", disk_bytes=64 << 20)
    spent = time.monotonic() - started
    assert (result.returncode, result.disk_exceeded, result.stdout) == (0, False, "left\n"), result
    # 65 names, one file: 16 MB on the host, not 1 GB
    linked = (scratch / "linked.bin").stat()
    assert linked.st_nlink == 65 and (scratch / "link63.bin").stat().st_ino == linked.st_ino
    # 1000 MB apparent, a page or so allocated: only the data was copied
    sparse = (scratch / "sparse.bin").stat()
    assert sparse.st_size == 1000 << 20 and sparse.st_blocks * 512 <= 1 << 20
    assert (scratch / "sparse.bin").open("rb").read(17) == b"data at the start"
    # links stay links (never followed); a FIFO stays a FIFO, a socket is left out
    assert os.readlink(scratch / "passwd") == "/etc/passwd" and os.readlink(scratch / "root") == "/"
    assert stat.S_ISFIFO(os.lstat(scratch / "model.pt2").st_mode) and not os.path.lexists(scratch / "socket")
    # what the job closed to everyone is still the host's to read and remove
    assert (scratch / "closed" / "secret.txt").read_text() == "inside a closed folder"
    # the part of the path past what the system allows is left out, and the rest is there
    assert (scratch / ("d" * 200)).is_dir()
    inodes = {(info.st_ino, info.st_blocks) for top, folders, files in os.walk(scratch) for name in folders + files
              for info in [os.lstat(os.path.join(top, name))]}
    allocated = sum(blocks * 512 for _, blocks in inodes)
    assert allocated < 20 << 20 and spent < 30, (allocated, spent)


@needs_cgroup
def test_files_in_the_scratch_count_against_the_memory_limit(tmp_path: Path) -> None:
    # tmpfs pages are charged to the memory cgroup of the process that writes them: a job cannot keep its data in
    # files to get around the memory limit (with no swap it is stopped as over memory, not disk)
    code = "f = open('big.bin', 'wb')\nfor _ in range(600): f.write(b'1' * (1 << 20)); f.flush()"
    result = run_sandboxed([sys.executable, "-c", code], SandboxSpec(scratch=tmp_path / "scratch", wall_seconds=60,
                                                                     memory_bytes=256 << 20, disk_bytes=1 << 30))
    swap = Path("/proc/swaps").read_text().strip().count("\n")
    if swap:
        pytest.skip("this host has swap: the tmpfs pages may go there instead")
    assert result.memory_exceeded and not result.disk_exceeded, result
    assert (tmp_path / "scratch" / "big.bin").stat().st_size <= 256 << 20


def test_without_namespaces_the_quota_is_watched_and_says_what_it_cannot_see(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(folder: Path, *, size: int, files: int) -> scratchfs.ScratchFS:
        raise ScratchFSError(1, "unshare(CLONE_NEWNS): Operation not permitted")

    monkeypatch.setattr(disk, "ScratchFS", refused)
    scratch = tmp_path / "scratch"
    code = "import os, time\nfor i in range(3000): open(str(i), 'w').close()\nprint('made', flush=True)\ntime.sleep(30)"
    result = run_sandboxed([sys.executable, "-c", code], SandboxSpec(scratch=scratch, wall_seconds=60,
                                                                     disk_bytes=50 << 20, disk_files=1000))
    assert result.disk_exceeded and result.returncode is None and result.seconds < 10, result
    assert "disk: watched, not enforced (no file system of its own: unshare(CLONE_NEWNS): Operation not permitted)" \
        in result.limits_used
    assert "cannot see files deleted while still open" in result.limits_used
    usage = disk.used(scratch)  # the walk counts empty files (they hold no blocks), and stopped it past 1,000
    assert usage.bytes == 0 and 1000 < usage.files <= 3000, usage
    # a job that ends before the next walk (0.5 s after the first) is measured as it ends: what it left counts
    quick = "import os\nfor i in range(1500): os.close(os.open(str(i), os.O_CREAT | os.O_WRONLY))"
    result = run_sandboxed([sys.executable, "-c", quick], SandboxSpec(scratch=tmp_path / "quick", wall_seconds=60,
                                                                      disk_bytes=50 << 20, disk_files=1000))
    assert result.disk_exceeded and result.returncode is None, result


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    """A folder that uid 65534 can reach (pytest's tmp_path lies under root's private folder)."""
    home = Path(tempfile.mkdtemp(prefix="mnist-grader-nobody-"))
    os.chmod(home, 0o755)
    yield home
    shutil.rmtree(home)


@pytest.mark.skipif(os.geteuid() != 0, reason="already unprivileged: every other test here takes that path")
@pytest.mark.skipif(not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs a Python that an unprivileged user can run")
def test_an_unprivileged_grader_gets_the_same_quota_in_a_user_namespace(nobody_home: Path, bwrap: str) -> None:
    # The grader's own interpreter and dependencies may lie where `nobody` cannot reach (under /root): the keeper and
    # scratchfs need only the standard library, so /usr/bin/python3 drives them, and bwrap runs each fixture.
    home = nobody_home
    shutil.copy(scratchfs.__file__, home / "scratchfs.py")
    shutil.copy(Path(scratchfs.__file__).with_name("scratch_keeper.py"), home / "scratch_keeper.py")
    for name in ("write_to_a_deleted_file", "make_empty_files"):
        shutil.copy(ADVERSARIAL / f"{name}.py", home / f"{name}.py")
    driver = textwrap.dedent(f"""
        import json, os, subprocess, sys
        sys.path.insert(0, {str(home)!r})
        from scratchfs import ScratchFS
        found = {{}}
        for name, args in (("write_to_a_deleted_file", ["100"]), ("make_empty_files", ["20000"])):
            folder = os.path.join({str(home)!r}, name + ".scratch")
            os.mkdir(folder)
            fs = ScratchFS(folder, size=50 << 20, files=1000)
            argv = [{bwrap!r}, "--unshare-all", "--unshare-user", "--die-with-parent", "--ro-bind", "/usr", "/usr",
                    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
                    "--proc", "/proc", "--dev", "/dev", "--bind", folder, folder,
                    "--ro-bind", {str(home)!r}, "/fixtures", "--chdir", folder,
                    "/usr/bin/python3", "/fixtures/" + name + ".py", *args]
            proc = subprocess.run(argv, preexec_fn=fs.enter, capture_output=True, text=True, timeout=120)
            found[name] = dict(rc=proc.returncode, out=proc.stdout, err=proc.stderr[-500:], full=fs.exceeded(),
                               peak=[fs.peak.bytes, fs.peak.files], userns=fs.userns)
            fs.close()
            found[name]["left"] = sorted(os.listdir(folder))
        print(json.dumps(found))
    """)
    for path in (home, *home.iterdir()):
        os.chown(path, 65534, 65534)
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I",
                          "-c", driver], capture_output=True, text=True, timeout=300, cwd=home)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    deleted, empty = found["write_to_a_deleted_file"], found["make_empty_files"]
    # the deleted file's pages went when the script ended: the kernel refused it every write past 50 MB
    assert deleted["userns"] and deleted["rc"] == 0 and "got 50 MB, refused 50 times" in deleted["out"], deleted
    assert deleted["left"] == []
    assert empty["rc"] == 0 and empty["full"] and "got 999 files, refused 19001 times" in empty["out"], empty
    assert empty["left"] == ["many"] and empty["peak"][1] == 1000
