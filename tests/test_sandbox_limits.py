"""Which limits mechanism is chosen (on fake cgroup trees), and that a job's cgroup is set up and removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.sandbox import SandboxSpec, limits, run_sandboxed

needs_cgroup = pytest.mark.skipif(limits.detect().hierarchy is None, reason="no writable cgroup on this host")


def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, v2_controllers: str, v1: tuple[str, ...]) -> None:
    """A /proc/self/mounts and cgroup folders under tmp_path, shaped like a real host's."""
    lines = []
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text(v2_controllers + "\n")
    # cgroupfs makes these files in every new folder; a plain folder needs them made.
    (unified / limits.PARENT).mkdir()
    for level in (unified, unified / limits.PARENT):
        (level / "cgroup.subtree_control").write_text("\n")
    lines.append(f"cgroup2 {unified} cgroup2 rw,relatime 0 0")
    for controller in v1:
        (tmp_path / controller).mkdir()
        lines.append(f"cgroup {tmp_path / controller} cgroup rw,relatime,{controller} 0 0")
    (tmp_path / "mounts").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(limits, "_MOUNTS", tmp_path / "mounts")


def test_prefers_cgroup_v2_with_memory_and_pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_host(tmp_path, monkeypatch, v2_controllers="cpu memory pids", v1=("memory", "pids"))
    found = limits.detect.__wrapped__()
    assert found.hierarchy == limits.Hierarchy(2, tmp_path / "unified" / limits.PARENT,
                                               tmp_path / "unified" / limits.PARENT)
    # Controllers are switched on down to the parent of the job cgroups.
    assert (tmp_path / "unified" / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (tmp_path / "unified" / limits.PARENT / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_uses_cgroup_v1_when_v2_lacks_the_controllers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The project's machines: a cgroup2 mount with only hugetlb, v1 memory and pids.
    fake_host(tmp_path, monkeypatch, v2_controllers="hugetlb", v1=("memory", "pids", "cpu"))
    found = limits.detect.__wrapped__()
    assert found.hierarchy == limits.Hierarchy(1, tmp_path / "memory" / limits.PARENT,
                                               tmp_path / "pids" / limits.PARENT)


def test_falls_back_to_rlimits_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_host(tmp_path, monkeypatch, v2_controllers="hugetlb", v1=("memory",))
    found = limits.detect.__wrapped__()
    assert found.hierarchy is None and "cgroup v1: not mounted with memory and pids" in found.reason
    job = limits.JobLimits(memory_bytes=1 << 30, max_processes=10, max_file_bytes=1 << 20, detected=found)
    assert job.used.startswith("rlimit (no writable cgroup: cgroup v2") and "not suitable for CUDA" in job.used
    assert job.memory_exceeded("Traceback ...\nMemoryError\n") and not job.memory_exceeded("ValueError")


@needs_cgroup
def test_job_cgroup_carries_the_limits_and_is_removed() -> None:
    hierarchy = limits.detect().hierarchy
    # Other jobs of this process may be open (a warm evaluator's zygote): this job's groups are the new ones.
    before = {p / d for p in hierarchy.parents for d in os.listdir(p)}
    with limits.JobLimits(memory_bytes=300 << 20, max_processes=42, max_file_bytes=1 << 20) as job:
        groups = [p / d for p in hierarchy.parents for d in os.listdir(p)
                  if d.startswith(f"job-{os.getpid()}-") and p / d not in before]
        assert len(groups) == len(hierarchy.parents)
        memory_file = "memory.max" if hierarchy.version == 2 else "memory.limit_in_bytes"
        assert [int((g / memory_file).read_text()) for g in groups if (g / memory_file).exists()] == [300 << 20]
        assert [(g / "pids.max").read_text().strip() for g in groups if (g / "pids.max").exists()] == ["42"]
        assert job.used == f"cgroup-v{hierarchy.version}" and not job.memory_exceeded("MemoryError")
    assert not any(g.exists() for g in groups)


@needs_cgroup
@pytest.mark.filterwarnings("ignore:running without the sandbox")
def test_the_command_starts_inside_its_job_cgroup(tmp_path: Path) -> None:
    # In trusted mode, because bwrap's cgroup namespace shows "/" inside; the
    # fork bomb test shows the sandboxed side.
    code = "print(open('/proc/self/cgroup').read())"
    result = run_sandboxed([sys.executable, "-c", code], SandboxSpec(scratch=tmp_path), sandbox=False)
    assert f"/{limits.PARENT}/job-{os.getpid()}-" in result.stdout, result.stdout


@needs_cgroup
def test_job_cgroups_left_by_a_killed_grader_are_swept_and_live_ones_kept() -> None:
    hierarchy = limits.detect().hierarchy
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has exited: its cgroups are stale
    stale = [p / f"job-{dead_pid}-deadbeef" for p in hierarchy.parents]
    live = [p / f"job-{os.getppid()}-cafef00d" for p in hierarchy.parents]  # pytest's parent is alive
    for group in stale + live:
        group.mkdir(exist_ok=True)
    try:
        limits._sweep_stale.cache_clear()
        assert limits._sweep_stale(hierarchy.parents) >= len(hierarchy.parents)
        assert not any(g.exists() for g in stale) and all(g.exists() for g in live)
    finally:
        for group in stale + live:
            if group.exists():
                group.rmdir()
