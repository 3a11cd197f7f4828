"""CPU budgets per job: each submission gets `cpus` cores (its thread pools, a cgroup CPU quota, its DataLoader
workers), and the default number of jobs is what the cores, memory and GPUs hold, so --jobs never makes a class
slower than one job at a time by oversubscribing the cores."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from grader import yamlio
from grader.cli.common import add_run_options, limits_given
from grader.data.staging import staged_root
from grader.errors import GraderError
from grader.execute.job import execute_notebook
from grader.executors import local
from grader.rubric.load import rubric_from_yaml
from grader.sandbox import SandboxSpec, limits, run_sandboxed
from grader.sandbox.bwrap import THREAD_VARIABLES, inside_env
from grader.settings import Options, RunLimits
from tests.test_sandbox_bwrap import LAYOUT

GIB = 1 << 30
needs_cpu_controller = pytest.mark.skipif(limits.detect_cpu() is None, reason="no writable cpu cgroup controller here")


# --- the budget in the sandbox's environment ---------------------------------------------------------------------

def test_every_thread_pool_variable_is_the_budget_and_the_spec_may_override_one(tmp_path: Path) -> None:
    spec = SandboxSpec.for_run(RunLimits(cpus=3), scratch=tmp_path, env={"OMP_NUM_THREADS": "2"})
    env = inside_env(spec, sandbox=True, layout=LAYOUT)
    assert {name: env[name] for name in THREAD_VARIABLES} == {**dict.fromkeys(THREAD_VARIABLES, "3"),
                                                              "OMP_NUM_THREADS": "2"}
    assert {"MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "GRADER_CPUS"} <= set(THREAD_VARIABLES)
    assert not set(THREAD_VARIABLES) & set(inside_env(SandboxSpec(scratch=tmp_path), sandbox=True, layout=LAYOUT))


PROBE = """
import json, os, torch
import grader.execute.cpu_budget as budget
from torch.utils.data import DataLoader
budget.apply_torch(budget.cpus())
loader = DataLoader(list(range(8)), num_workers=4)
print(json.dumps({"env": {k: os.environ.get(k) for k in %r}, "torch": torch.get_num_threads(),
                  "interop": torch.get_num_interop_threads(), "workers": loader.num_workers,
                  "record": budget.record()}))
"""


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("cpus, workers", [(1, 0), (2, 2), (3, 3)])
def test_a_sandboxed_python_sees_the_budget_in_torch_and_its_data_loaders(tmp_path: Path, cpus: int,
                                                                          workers: int) -> None:
    spec = SandboxSpec.for_run(RunLimits(cpus=cpus, wall_seconds=120), scratch=tmp_path)
    result = run_sandboxed([sys.executable, "-c", PROBE % (THREAD_VARIABLES,)], spec)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["env"] == dict.fromkeys(THREAD_VARIABLES, str(cpus))
    assert (seen["torch"], seen["interop"], seen["workers"]) == (cpus, cpus, workers)
    assert seen["record"]["notes"] == [f"DataLoader(num_workers=4) runs with {workers} workers: this submission's CPU "
                                       f"budget is {cpus} {'core' if cpus == 1 else 'cores'} (--cpus / the rubric's "
                                       "limits: cpus)" + (", so the data loads in the training loop's process"
                                                          if workers == 0 else "")]
    assert f"[grader] DataLoader(num_workers=4) runs with {workers} workers" in result.stderr


# --- the cgroup CPU quota ------------------------------------------------------------------------------------------

QUOTA_FROM_INSIDE = """
lines = open("/proc/self/cgroup").read().splitlines()
v1 = [line.split(":", 2)[2] for line in lines if "cpu" in line.split(":")[1].split(",")]
where = "/sys/fs/cgroup/cpu" + v1[0] if v1 else "/sys/fs/cgroup" + lines[0].split(":", 2)[2]
print("group", "=", where)
for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max"):
    try:
        print(name, "=", open(where + "/" + name).read().strip())
    except OSError:
        pass
"""


@needs_cpu_controller
@pytest.mark.filterwarnings("ignore:running without the sandbox")
def test_a_running_job_reads_its_cpu_quota_in_its_own_cgroup(tmp_path: Path) -> None:
    # Trusted mode, to read its own cgroup files (bwrap's cgroup namespace shows "/" inside). (Whether two busy
    # processes get throttled depends on what else this shared host runs, so that is not asserted.)
    spec = SandboxSpec.for_run(RunLimits(cpus=1, wall_seconds=60), scratch=tmp_path)
    result = run_sandboxed([sys.executable, "-c", QUOTA_FROM_INSIDE], spec, sandbox=False)
    assert result.returncode == 0, result.stderr
    files = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    if limits.detect_cpu().version == 1:
        assert (files["cpu.cfs_quota_us"], files["cpu.cfs_period_us"]) == ("100000", "100000")
    else:
        assert files["cpu.max"] == "100000 100000"
    assert f"/{limits.PARENT}/job-" in files["group"] and "(cpu quota 1 core);" in result.limits_used
    assert not Path(files["group"]).exists()  # removed with the job


@needs_cpu_controller
def test_the_quota_group_is_made_with_the_job_and_removed_with_it() -> None:
    controller = limits.detect_cpu()
    with limits.JobLimits(memory_bytes=GIB, max_processes=32, max_file_bytes=1 << 20, cpus=2) as job:
        groups = [g for g in job._cgroups if g.parent == controller.parent]
        assert len(groups) == 1 and "cpu quota 2 cores" in job.used
        quota = (groups[0] / ("cpu.max" if controller.version == 2 else "cpu.cfs_quota_us")).read_text().split()
        assert quota[0] == "200000"
    assert not groups[0].exists()


def fake_detected(tmp_path: Path) -> limits.Detected:
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
    return limits.Detected(limits.Hierarchy(1, tmp_path / "memory", tmp_path / "pids"), "")


def test_v2_quota_goes_into_the_jobs_own_cgroup(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    unified.mkdir()
    detected = limits.Detected(limits.Hierarchy(2, unified, unified), "")
    job = limits.JobLimits(memory_bytes=GIB, max_processes=32, max_file_bytes=1 << 20, cpus=2, detected=detected,
                           cpu=limits.CpuController(2, unified))
    (group,) = job._cgroups  # one folder for memory, pids and cpu
    assert (group / "cpu.max").read_text() == "200000 100000" and job.used == "cgroup-v2 (cpu quota 2 cores)"


def test_v2_cpu_controller_is_enabled_down_to_the_job_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "unified"
    (root / limits.PARENT).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    for level in (root, root / limits.PARENT):
        (level / "cgroup.subtree_control").write_text("memory pids\n")
    (tmp_path / "mounts").write_text(f"cgroup2 {root} cgroup2 rw 0 0\n")
    monkeypatch.setattr(limits, "_MOUNTS", tmp_path / "mounts")
    assert limits.detect_cpu.__wrapped__() == limits.CpuController(2, root / limits.PARENT)
    assert (root / "cgroup.subtree_control").read_text() == "+cpu"


def test_no_cpu_controller_leaves_the_job_running_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mounts").write_text(f"cgroup {tmp_path / 'memory'} cgroup rw,memory 0 0\n")
    monkeypatch.setattr(limits, "_MOUNTS", tmp_path / "mounts")
    assert limits.detect_cpu.__wrapped__() is None
    monkeypatch.setattr(limits, "detect_cpu", lambda: None)
    job = limits.JobLimits(memory_bytes=GIB, max_processes=32, max_file_bytes=1 << 20, cpus=1,
                           detected=fake_detected(tmp_path))
    assert job.used == "cgroup-v1 (no cpu quota: no writable cpu cgroup controller)"
    assert [g.parent.name for g in job._cgroups] == ["memory", "pids"]


def test_a_refused_quota_leaves_the_job_running_and_says_why(tmp_path: Path) -> None:
    job = limits.JobLimits(memory_bytes=GIB, max_processes=32, max_file_bytes=1 << 20, cpus=1,
                           detected=fake_detected(tmp_path), cpu=limits.CpuController(1, tmp_path / "gone"))
    assert job.used.startswith("cgroup-v1 (no cpu quota: [Errno 2] No such file or directory")
    assert [g.parent.name for g in job._cgroups] == ["memory", "pids"]


def test_a_v1_quota_is_written_as_period_and_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    job = limits.JobLimits(memory_bytes=GIB, max_processes=32, max_file_bytes=1 << 20, cpus=4,
                           detected=fake_detected(tmp_path), cpu=limits.CpuController(1, tmp_path / "cpu"))
    group = job._cgroups[-1]
    assert group.parent == tmp_path / "cpu" and group.name == job._cgroups[0].name  # named like the job's others
    assert ((group / "cpu.cfs_period_us").read_text(), (group / "cpu.cfs_quota_us").read_text()) == ("100000", "400000")
    assert job.used == "cgroup-v1 (cpu quota 4 cores)"


# --- a notebook kernel through the real execute path ------------------------------------------------------------

def _notebook() -> nbformat.NotebookNode:
    cells = [
        "import os, torch\nfrom torch import nn\nfrom torch.utils.data import DataLoader, Dataset",
        "class Pids(Dataset):\n    def __len__(self): return 64\n"
        "    def __getitem__(self, i): return torch.full((1, 28, 28), float(os.getpid())), i % 10",
        "loader = DataLoader(Pids(), batch_size=16, num_workers=4, persistent_workers=True, prefetch_factor=4)\n"
        "model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.0)\n"
        "pids = set()\n"
        "for x, y in loader:\n"
        "    pids.add(int(x[0, 0, 0, 0]))\n"
        "    opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()",
        "print('THREADS', torch.get_num_threads(), 'WORKERS', loader.num_workers, "
        "'IN_KERNEL', pids == {os.getpid()}, 'OMP', os.environ['OMP_NUM_THREADS'])",
    ]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


@pytest.mark.usefixtures("bwrap")
def test_a_notebook_kernel_trains_on_one_thread_and_loads_its_data_in_process(tmp_path: Path, real_mnist_dir) -> None:
    options = Options(variable="model", limits=RunLimits(cpus=1, wall_seconds=300, memory_bytes=3 * GIB),
                      variable_named=True, gpu=False)
    execution = execute_notebook(_notebook(), options, jobdir=tmp_path, staged=staged_root(Path(real_mnist_dir)),
                                 mnist_roots=())
    assert execution.run is not None and [c.status for c in execution.run.cells] == ["ok"] * 4, execution.output_tail
    budget = execution.harness.cpu_budget
    assert budget.cpus == 1 and budget.threads["torch"] == 1 and budget.threads["torch_interop"] == 1
    assert budget.notes == ["DataLoader(num_workers=4) runs with 0 workers: this submission's CPU budget is 1 core "
                            "(--cpus / the rubric's limits: cpus), so the data loads in the training loop's process"]
    assert execution.harness.counters.optimizer_steps == 4 and execution.harness.counters.samples_seen == 64
    if limits.detect_cpu() is not None:  # the kernel, its runner and bwrap ran under the job's one-core quota
        assert "(cpu quota 1 core);" in execution.sandbox.limits_used, execution.sandbox.limits_used
    executed = nbformat.read(str(execution.out_dir / "executed.ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "THREADS 1 WORKERS 0 IN_KERNEL True OMP 1" in printed, printed
    assert "[grader] DataLoader(num_workers=4) runs with 0 workers" in printed  # said once, where the student reads


# --- how many jobs by default ------------------------------------------------------------------------------------

@pytest.mark.parametrize("cores, memory_total, gpus, cpus, per_gpu, jobs", [
    (2, 64 * GIB, 0, 1, 1, 2),  # this machine: one job per core
    (2, 64 * GIB, 0, 2, 1, 1),  # two cores each: one job
    (16, 64 * GIB, 0, 3, 1, 5),  # cores // cpus
    (1, 64 * GIB, 0, 4, 1, 1),  # never below one
    (32, 20 * GIB, 0, 1, 1, 3),  # memory holds three 6G jobs
    (32, 4 * GIB, 0, 1, 1, 1),  # nor below one for memory
    (32, 256 * GIB, 2, 1, 1, 2),  # one per GPU
    (32, 256 * GIB, 2, 2, 6, 12),  # GPUs x jobs_per_gpu
    (8, 256 * GIB, 2, 1, 8, 8),  # ... capped by the cores
    (32, 256 * GIB, 2, 4, 8, 8),  # ... by cores // cpus
    (64, 24 * GIB, 4, 1, 8, 4),  # ... and by memory
    (4, None, 0, 1, 1, 4),  # memory unknown: cores only
])
def test_default_jobs_are_what_cores_memory_and_gpus_hold(cores, memory_total, gpus, cpus, per_gpu, jobs) -> None:
    assert local.plan_jobs(cores=cores, memory_total=memory_total, memory_bytes=6 * GIB, gpus=gpus, cpus=cpus,
                           jobs_per_gpu=per_gpu) == jobs


def test_default_jobs_reads_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(local, "gpu_indices", lambda: [0, 1])
    assert local.default_jobs(GIB, None, cpus=1, jobs_per_gpu=3) == 6
    assert local.default_jobs(GIB, None) == 2  # the old call: one per GPU
    assert local.default_jobs(GIB, False, cpus=2) == 4  # GPUs not used: cores // cpus
    monkeypatch.setattr(local, "gpu_indices", lambda: [])
    assert local.default_jobs(GIB, None) == 8 and local.default_jobs(GIB, None, cpus=3) == 2


def test_gpu_slots_spread_over_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "gpu_indices", lambda: [0, 1])
    together = threading.Barrier(4, timeout=10)  # all four slots busy at once

    def task(item: int, gpu: int | None) -> int | None:
        together.wait()
        return gpu

    seen = Counter(gpu for _, gpu in local.LocalExecutor(4).run(task, range(4)))
    assert seen == {0: 2, 1: 2}


# --- the rubric key and the flags --------------------------------------------------------------------------------

RUBRIC = "id: t\ntitle: T\nlimits: {%s}\nitems:\n  - {id: a, title: A, fact: model.gap, eq: true, points: 1}\n"


def test_the_rubric_sets_cpus_and_jobs_per_gpu() -> None:
    limits_ = rubric_from_yaml(yamlio.loads(RUBRIC % "cpus: 2, jobs_per_gpu: 6", "r.yaml")).limits.run_limits()
    assert (limits_.cpus, limits_.jobs_per_gpu) == (2, 6)
    assert RunLimits().cpus is None and RunLimits().jobs_per_gpu == 1  # cpus: the cores shared by the jobs at once


def test_an_unset_budget_shares_the_cores_among_the_jobs_at_once(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert RunLimits().with_cpus_for(1).cpus == 8  # --jobs 1 uses every core
    assert RunLimits().with_cpus_for(2).cpus == 4 and RunLimits().with_cpus_for(16).cpus == 1
    assert RunLimits(cpus=3).with_cpus_for(1).cpus == 3  # given: kept


def test_grade_class_gives_each_job_its_share_of_the_cores(tmp_path, monkeypatch) -> None:
    from grader import api
    from grader.executors import facts_task

    seen = []
    monkeypatch.setattr(facts_task, "grade_facts", lambda path, options, *a, **k: seen.append(options.limits.cpus) or
                        facts_task.Facts())
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    for name in ("a_1_x.ipynb", "b_2_x.ipynb"):
        (tmp_path / name).write_text("{}")
    rubric = api.load_rubric("mnist-s3")
    for jobs, share in ((1, 4), (2, 2), (4, 1)):
        seen.clear()
        list(api.grade_class(tmp_path, rubric, api.options_for(rubric, mode="static"), out=tmp_path / f"o{jobs}",
                             jobs=jobs, force=True))
        assert seen == [share, share], (jobs, seen)


@pytest.mark.parametrize("written, key",
                         [("cpus: two", "cpus"), ("cpus: 0", "cpus"), ("jobs_per_gpu: 1.5", "jobs_per_gpu")])
def test_a_wrong_rubric_value_names_its_key(written: str, key: str) -> None:
    with pytest.raises(GraderError) as err:
        rubric_from_yaml(yamlio.loads(RUBRIC % written, "r.yaml"))
    assert err.value.what.startswith(f"limits.{key}:"), err.value.what


@pytest.mark.parametrize("argv, where, what", [
    (["--cpus", "0"], "--cpus", "'0' must be positive"),
    (["--jobs-per-gpu", "many"], "--jobs-per-gpu", "'many' is not a number"),
])
def test_a_wrong_flag_names_the_flag(argv, where, what) -> None:
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    with pytest.raises(GraderError) as err:
        limits_given(parser.parse_args(argv))
    assert (err.value.where, err.value.what) == (where, what)
    assert limits_given(parser.parse_args(["--cpus", "2", "--jobs-per-gpu", "4"])).model_dump(
        include={"cpus", "jobs_per_gpu"}) == {"cpus": 2, "jobs_per_gpu": 4}
