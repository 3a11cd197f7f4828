"""The Ray executor (`grade SUBMISSIONS --executor ray`): a class graded as Ray tasks gives the gradebook the local
pool gives, a worker killed mid-task is retried, and without Ray installed the message says how to get it.

Real Ray on loopback, no mocks: one local instance (2 CPUs) for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader.api import executor_for, grade_class, load_rubric, options_for, write_outputs

ray = pytest.importorskip("ray", reason="Ray is the optional extra `.[ray]`; ./test.sh installs it (the dev extra) "
                                        "before the tests")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"
TASK_TITLE = "ray::grade_one"  # what Ray titles a worker process while it runs grader.executors.ray_executor.grade_one


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # binds to loopback
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    """The six example students and four copies under other ids (ten submissions, each with its model)."""
    folder = tmp_path_factory.mktemp("ray-class") / "submissions"
    shutil.copytree(EXAMPLES, folder)
    for original in sorted(EXAMPLES.iterdir())[:4]:
        name, student, rest = original.name.split("_", 2)
        shutil.copytree(original, folder / f"{name}_{int(student) + 1000}_{rest}")
    return folder


@pytest.fixture(scope="module")
def evaluate_options(real_mnist_dir):
    rubric = load_rubric("mnist-s3")
    return rubric, options_for(rubric, mode="evaluate", data=str(real_mnist_dir))


@pytest.fixture(scope="module")
def local_results(klass, evaluate_options, tmp_path_factory, bwrap) -> tuple[list, str]:
    """The class graded by the local pool: its results and its gradebook, what Ray must give."""
    rubric, options = evaluate_options
    out = tmp_path_factory.mktemp("local-out")
    with executor_for("local", jobs=2, options=options) as executor:
        results = list(grade_class(klass, rubric, options, out=out, executor=executor))
    assert len(results) == 10
    return results, write_outputs(results, out).read_text()


@pytest.fixture(scope="module")
def local_gradebook(local_results) -> str:
    return local_results[1]


def _grade_with_ray(klass, rubric, options, out):
    with executor_for("ray", options=options) as executor:
        results = list(grade_class(klass, rubric, options, out=out, executor=executor))
    return results, write_outputs(results, out).read_text()


def _why_not_ok(ray_results, local_results) -> str:
    """The verdicts that are not `ok` on either side, with their messages (what a failed comparison should show)."""
    return "\n".join(f"{side} {r.student}: {r.facts.verdict.kind}: {r.facts.verdict.message}\n"
                     f"{r.facts.verdict.output_tail or ''}"
                     for side, results in (("ray", ray_results), ("local", local_results[0]))
                     for r in results if r.facts.verdict.kind != "ok")


def test_a_class_graded_as_ray_tasks_gives_the_local_gradebook(local_ray, klass, evaluate_options, local_gradebook,
                                                             local_results, tmp_path):
    rubric, options = evaluate_options
    results, gradebook = _grade_with_ray(klass, rubric, options, tmp_path)
    assert sorted(r.student for r in results) == sorted({r.student for r in results})
    assert len(results) == 10 and not any(r.cached for r in results)
    assert gradebook == local_gradebook, _why_not_ok(results, local_results)
    assert {r.facts.verdict.kind for r in results} == {"ok"}
    # the driver cached every result: a second run through Ray runs nothing
    again, gradebook_again = _grade_with_ray(klass, rubric, options, tmp_path)
    assert all(r.cached for r in again) and gradebook_again == local_gradebook


def _grading_workers() -> list[int]:
    found = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in found.splitlines()
            if len(line.split(None, 1)) == 2 and line.split(None, 1)[1].startswith(TASK_TITLE)]


def test_a_killed_worker_is_retried_and_every_student_gets_one_result(local_ray, klass, evaluate_options,
                                                                     local_gradebook, local_results, tmp_path):
    rubric, options = evaluate_options
    killed: list[int] = []

    def kill_one_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            workers = _grading_workers()
            if workers:
                time.sleep(0.5)  # into the task: its sandbox has started
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    results, gradebook = _grade_with_ray(klass, rubric, options, tmp_path)
    killer.join(5)
    assert killed, f"no process titled {TASK_TITLE!r} appeared within 120 s: the test killed nothing"
    students = [r.student for r in results]
    assert len(students) == 10 and len(set(students)) == 10  # one result per submission, none twice
    assert gradebook == local_gradebook, _why_not_ok(results, local_results)


def test_the_task_ships_no_test_data_and_names_the_environment_by_its_requirements(real_mnist_dir, bwrap):
    """What a Ray worker receives: the options and the grading environment as requirements (the worker finds or
    builds its own copy, the same one here), never the 10,000 test images."""
    import pickle

    from grader.api import prepare_test_data
    from grader.env.build import plan
    from grader.executors.facts_task import FactsTask, portable_environment

    rubric = load_rubric("mnist-s3")
    options = options_for(rubric, mode="execute", data=str(real_mnist_dir))
    task = FactsTask(options, data=prepare_test_data(options.data), environment=portable_environment(rubric, options))
    shipped = pickle.loads(pickle.dumps(task))
    assert shipped.data is None and shipped.options == options and len(pickle.dumps(task)) < 10_000
    assert plan(shipped.environment).path == options.environment
    assert portable_environment(rubric, options_for(rubric, mode="evaluate")) is None  # no kernel runs


def test_without_ray_the_error_says_how_to_install_it():
    script = """
import sys
sys.modules["ray"] = None  # what an interpreter without Ray sees: import ray raises ImportError
from grader.api import executor_for
from grader.errors import GraderError
try:
    with executor_for("ray"):
        pass
except GraderError as err:
    print(err.render())
else:
    print("no error")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pip install '.[ray]'" in done.stdout and "--executor ray" in done.stdout, done.stdout


def test_grade_cli_with_executor_ray_starts_its_own_ray(klass, tmp_path, bwrap):
    """Static mode: a local Ray is started for the run (the machine's cores) and shut down after it."""
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": ""}  # never join another Ray by accident
    done = subprocess.run([sys.executable, "-m", "grader", str(klass), "--rubric", "mnist-s3", "--mode", "static",
                           "--executor", "ray", "--out", str(out), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert len(rows) == 10 and len({r["student"] for r in rows}) == 10
    assert (out / "gradebook.csv").is_file() and "10 graded" in done.stderr


def test_grade_serve_with_executor_ray_grades_a_job_as_a_ray_task(tmp_path, bwrap):
    """`grade serve --executor ray`: the server starts a local Ray, a job goes through it, a stop shuts Ray down."""
    from tests.fixtures.service.harness import start_server, submission

    with start_server(tmp_path / "serve", "--executor", "ray", env={"RAY_ADDRESS": ""}, timeout=120) as server:
        response = server.submit(submission("s-ray"))
        assert response.status_code == 202, response.text
        state = server.wait(response.json()["id"])
        assert state["status"] == "graded" and (state["score"], state["max_score"]) == (15, 15), state
        assert server.stop() == 0
    assert "Started a local Ray instance" in server.log.read_text()  # Ray's own line: the job had no other way
