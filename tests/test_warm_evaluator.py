"""The warm evaluator: one zygote with torch imported, one isolated child per submission.

The same measurements as a fresh sandbox per submission; the adversarial fixtures run in a child exactly where a
model would be measured, and none of them changes the zygote or another submission's result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from grader.data.preprocess import COURSE_PREPROCESS
from grader.data.staging import TEST_IMAGES, prepare_test_data
from grader.evaluate import warm
from grader.evaluate.eval_jobs import EvalJob
from grader.evaluate.job import evaluate_model
from grader.evaluate.warm import WarmEvaluator
from grader.sandbox import limits as cgroups
from grader.sandbox.readback import Folder
from grader.settings import Options, RunLimits
from tests.bound_paths import leading_into, shows_only_the_way_in

pytestmark = pytest.mark.usefixtures("bwrap")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "submissions"
ADVERSARIAL = Path(__file__).parent / "fixtures" / "adversarial"
MODELS = sorted(EXAMPLES.glob("*/model.pt2"))
needs_cgroup = pytest.mark.skipif(cgroups.detect().hierarchy is None,
                                  reason="no writable cgroup: rlimits cannot do this")
COURSE = EvalJob(model_file="", images_file="", out_dir="", scale=float(COURSE_PREPROCESS.scale),
                 shift=float(COURSE_PREPROCESS.shift))


@pytest.fixture(scope="module")
def data(real_mnist_dir):
    return prepare_test_data(real_mnist_dir)


@pytest.fixture(scope="module")
def evaluator(data):
    evaluator = WarmEvaluator(data.staged / TEST_IMAGES, limits=RunLimits())
    yield evaluator
    evaluator.close()


def predictions(evaluator: WarmEvaluator, model: Path, **limits) -> np.ndarray:
    result = evaluator.evaluate(COURSE, model, limits=RunLimits(**limits))
    assert result.header is not None and "record" in result.header, (result.problem, result.log)
    return result.arrays[0]


def script(evaluator: WarmEvaluator, name: str, *argv: str, **limits) -> warm.WarmResult:
    return evaluator.run_script(ADVERSARIAL / f"{name}.py", list(argv),
                                limits=RunLimits(**{"eval_seconds": 20, **limits}))


def test_warm_and_fresh_sandboxes_measure_every_example_alike(data, tmp_path, monkeypatch):
    assert len(MODELS) == 6
    measured = {}
    for setting in ("1", "0"):  # warm, then a fresh sandbox each
        monkeypatch.setenv("GRADER_WARM_EVAL", setting)
        for i, model in enumerate(MODELS):
            with Folder(model.parent) as folder:
                evaluation = evaluate_model(folder, model.name, "export", Options(warm=True),
                                            preprocess=COURSE_PREPROCESS, staged=data.staged, labels=data.labels,
                                            jobdir=tmp_path / f"{setting}-{i}")
            assert evaluation.error is None, evaluation.error
            measured.setdefault(model.parent.name, []).append(
                (evaluation.eval.accuracy, evaluation.eval.misclassified, evaluation.model.model_dump()))
    for name, (hot, cold) in measured.items():
        assert hot == cold, name
    assert {name: runs[0][0] for name, runs in measured.items()}["Ed Old_1005_assignsubmission_file_"] < 20


def test_one_zygote_serves_a_class_and_each_child_costs_little(evaluator):
    evaluator.evaluate(COURSE, MODELS[0], limits=RunLimits())  # started (or already running)
    zygote, starts = evaluator.zygote_pid(), evaluator.starts
    for model in MODELS:
        result = evaluator.evaluate(COURSE, model, limits=RunLimits())
        assert result.exit == 0 and result.header["record"]["n"] == 10_000
    assert (evaluator.zygote_pid(), evaluator.starts) == (zygote, starts)


@pytest.mark.parametrize("name", ["infinite_loop", "sleep_past_limit"])
def test_running_forever_is_killed_at_the_evaluation_clock(evaluator, name):
    started = time.monotonic()
    result = script(evaluator, name, eval_seconds=2)
    assert result.timed_out and 2 <= time.monotonic() - started < 8
    assert result.log.strip() in ("looping", "sleeping")
    assert predictions(evaluator, MODELS[0]).shape == (10_000,)


@needs_cgroup
def test_fork_bomb_hits_the_childs_own_process_limit(evaluator):
    result = script(evaluator, "fork_bomb", max_processes=64)
    assert result.header == {"script_exit": 3, "sizes": []}, result.log
    made = int(result.log.split("refused after ")[1].split(":")[0])
    assert 0 < made < 64


@needs_cgroup
def test_memory_bomb_ends_with_memory_exceeded_in_its_own_cgroup(evaluator):
    result = script(evaluator, "memory_bomb", "3000", memory_bytes=400 << 20)
    assert result.memory_exceeded and result.header is None and "allocated everything" not in result.log
    assert predictions(evaluator, MODELS[0]).shape == (10_000,)


def test_filling_the_disk_stops_at_the_file_size_limit(evaluator):
    result = script(evaluator, "fill_disk", "100", max_file_bytes=20 << 20)
    assert result.header["script_exit"] == 4 and "File too large" in result.log, result.log


def test_printing_gigabytes_keeps_a_bounded_tail(evaluator):
    result = script(evaluator, "print_gigabytes", "100")
    assert result.header["script_exit"] == 0 and len(result.log) <= warm._MAX_LOG_BYTES
    assert result.log.rstrip().endswith("THE END")


def test_no_network_and_no_grader_environment(evaluator, monkeypatch):
    monkeypatch.setenv("MNIST_GRADER_TEST_SECRET", "secret-warm")  # set after the zygote started: never seen
    result = script(evaluator, "open_socket", "9")
    assert "refused 127.0.0.1:9" in result.log and "refused 1.1.1.1:80" in result.log, result.log
    result = script(evaluator, "read_environment")
    assert result.header["script_exit"] == 0 and "secret-warm" not in result.log


def test_a_child_that_tampers_with_everything_changes_no_other_result(evaluator, tmp_path):
    before = [predictions(evaluator, model) for model in MODELS[:2]]
    zygote, starts = evaluator.zygote_pid(), evaluator.starts
    outcomes: dict[str, dict] = {}

    def tamper(tag: str) -> None:
        result = script(evaluator, "tamper_with_siblings", tag)
        outcomes[tag] = json.loads(result.log.strip().splitlines()[-1])

    # Two tampering children at once with two models being measured beside them.
    threads = [threading.Thread(target=tamper, args=(tag,)) for tag in ("a", "b")]
    for thread in threads:
        thread.start()
    during = [predictions(evaluator, model) for model in MODELS[:2]]
    for thread in threads:
        thread.join()
    after = [predictions(evaluator, model) for model in MODELS[:2]]
    for b, d, a in zip(before, during, after, strict=True):
        assert np.array_equal(b, d) and np.array_equal(b, a)
    assert (evaluator.zygote_pid(), evaluator.starts) == (zygote, starts)  # the zygote was never hit

    seen = outcomes["a"]
    assert seen["write /tmp"] == "written"  # its own tmpfs, and nothing else
    assert [k for k, v in seen.items() if k.startswith("write /") and v == "written"] == ["write /tmp",
                                                                                         "write /dev/shm"]
    assert seen["overwrite the test images"].startswith("error")
    assert seen["parent pid"] == "0"  # its parent lies outside its PID namespace
    assert seen["pids signalled"] == []  # no other process exists for it
    assert seen["list /proc"] == []  # a fresh empty /proc: the zygote's entries are out of sight
    assert seen["zygote oom_score_adj"].startswith("error")
    assert seen["abstract socket"].startswith("error") and "connect" not in seen["abstract socket"].split(":")[0]
    assert seen["loopback"].startswith("error")
    assert seen["sysv shm"].startswith("shmid")  # its own IPC namespace lets it make one ...
    look = script(evaluator, "look_for_planted")
    found = json.loads(look.log.strip().splitlines()[-1])
    assert found["/tmp"] == [] and found["/dev/shm"] == [] and found["/dev"] == [] and found["/"] == []
    assert found["sysv shm"] == -1  # ... that no later child sees
    host = evaluator.images.parent
    assert not list(host.glob("planted-*")) and np.load(evaluator.images).shape == (10_000, 28, 28)


def test_a_dead_zygote_is_started_again_for_the_next_submission(data):
    evaluator = WarmEvaluator(data.staged / TEST_IMAGES, limits=RunLimits())
    try:
        first = predictions(evaluator, MODELS[0])
        os.killpg(evaluator.zygote_pid(), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while evaluator._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert np.array_equal(predictions(evaluator, MODELS[0]), first)
        assert evaluator.starts == 2
    finally:
        evaluator.close()
    assert evaluator.zygote_pid() is None


def test_a_model_file_is_read_through_a_descriptor_not_a_path(evaluator, tmp_path):
    # The child is handed an open file: a model whose name is odd or whose folder is unreadable inside still loads.
    odd = tmp_path / "wëird name (1).pt2"
    shutil.copyfile(MODELS[0], odd)
    assert np.array_equal(predictions(evaluator, odd), predictions(evaluator, MODELS[0]))


def test_killing_its_parent_and_everything_leaves_the_zygote_and_the_grader_alive(evaluator):
    zygote, starts = evaluator.zygote_pid(), evaluator.starts
    result = script(evaluator, "kill_parent")
    # Its parent lies outside its PID namespace (getppid() is 0, so "kill 0" is its own group), and -1 reaches no one.
    assert "parent is 0" in result.log and "still alive" in result.log, result.log
    assert (evaluator.zygote_pid(), evaluator.starts) == (zygote, starts)
    assert predictions(evaluator, MODELS[0]).shape == (10_000,)


def test_the_host_and_the_checkout_are_invisible(evaluator):
    checkout = str(Path(__file__).resolve().parents[1])
    result = script(evaluator, "list_host_folders", str(Path.home()), checkout, "/")
    seen = json.loads(result.log.strip().splitlines()[-1])
    # Only the system folders and the paths that lead to what the zygote binds: the interpreter (a .venv made by
    # ./setup.sh lives in the checkout: then the checkout shows that one entry), the grader, the data.
    assert shows_only_the_way_in(seen[checkout], checkout), seen
    system = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp", "opt"}
    assert set(seen["/"]) <= system | leading_into("/"), seen["/"]


def test_a_child_cannot_undo_its_isolation(evaluator, tmp_path):
    # It has no capabilities left and may make no user namespace: the covers stay, nothing becomes writable again,
    # and no cgroup file system can be mounted to lift its limits.
    probe = tmp_path / "undo.py"
    probe.write_text(
        "import ctypes, json, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "out = {}\n"
        "def t(name, r): out[name] = 'done' if r == 0 else os.strerror(ctypes.get_errno())\n"
        "t('umount /proc', libc.umount2(b'/proc', 2))\n"
        "t('umount /tmp', libc.umount2(b'/tmp', 2))\n"
        "t('umount /dev/shm', libc.umount2(b'/dev/shm', 2))\n"
        "t('remount home writable', libc.mount(None, os.environ['HOME'].encode(), None, 32 | 4096, None))\n"
        "t('new user namespace', libc.unshare(0x10000000))\n"
        "t('new cgroup namespace', libc.unshare(0x02000000))\n"
        "t('mount a cgroup', libc.mount(b'cgroup', b'/tmp', b'cgroup', 0, b'pids'))\n"
        "print(json.dumps(out))\n")
    result = evaluator.run_script(probe, [], limits=RunLimits(eval_seconds=20))
    outcome = json.loads(result.log.strip().splitlines()[-1])
    assert len(outcome) == 7 and "done" not in outcome.values(), outcome


@pytest.mark.parametrize("written", [b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]", b"\x02\x00\x00\x00\x00\x00\x00\x00{}",
                                     b"garbage", b"\xff" * 8])
def test_a_forged_result_is_the_submissions_problem_not_the_graders(written):
    header, arrays, problem = warm._parse(written)
    assert arrays == [] and (problem is not None or header == {})


def test_an_evaluator_evicted_while_measuring_finishes_first(data):
    evaluator = WarmEvaluator(data.staged / TEST_IMAGES, limits=RunLimits())
    try:
        done = []
        thread = threading.Thread(target=lambda: done.append(predictions(evaluator, MODELS[1])))
        thread.start()
        deadline = time.monotonic() + 60
        while evaluator._users == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        evaluator.retire()  # as the shared registry does when a third test set arrives
        thread.join()
        assert done and done[0].shape == (10_000,)  # not cut short
        assert evaluator.zygote_pid() is None  # and closed once idle
    finally:
        evaluator.close()
