"""What the class driver reads of an executor is what the `Executor` protocol declares: `remote` (a task may run
on another machine: it is handed each submission's files as bytes, and told started when handed over) and `jobs`
(how many run at once, which share this machine's cores)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

from grader.api import grade_class, load_rubric, options_for
from grader.executors import Executor, LocalExecutor
from grader.executors.local import slots
from grader.executors.shipped import Shipped

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"


class Elsewhere:
    """Tasks that run as on another machine: the task and each item pickled there and back, one at a time."""

    remote = True

    def __init__(self, jobs=None):
        self.jobs = jobs
        self.handed: list[object] = []

    def run(self, task, items):
        for item in items:
            self.handed.append(item)
            there_task, there_item = pickle.loads(pickle.dumps((task, item)))
            yield item, there_task(there_item, None)


def _class(folder: Path) -> Path:
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", folder / "smith_111_1_hw.ipynb")
    shutil.copy(NOTEBOOKS / "colab_badges.ipynb", folder / "doe_222_1_hw.ipynb")
    return folder


def test_a_remote_executor_is_handed_the_files_as_bytes_and_grades_as_the_local_pool(tmp_path):
    rubric = load_rubric("mnist-s3")
    options = options_for(rubric, mode="static")
    klass = _class(tmp_path / "class")
    elsewhere: Executor = Elsewhere()
    events: list[tuple[str, str]] = []
    there = {r.student: r for r in grade_class(klass, rubric, options, out=tmp_path / "there", executor=elsewhere,
                                               on_event=lambda kind, s, r: events.append((kind, s.student)))}
    here = {r.student: r for r in grade_class(klass, rubric, options, out=tmp_path / "here",
                                              executor=LocalExecutor(2))}
    assert [type(item) for item in elsewhere.handed] == [Shipped, Shipped]
    assert {s: r.sheet.score for s, r in there.items()} == {s: r.sheet.score for s, r in here.items()}
    assert {s: r.facts.notebook for s, r in there.items()} == {s: r.facts.notebook for s, r in here.items()}
    # a remote task's start is not seen here: every one is told started when handed over, before any is done
    assert [kind for kind, _ in events] == ["queued", "queued", "start", "start", "done", "done"]


def test_the_jobs_an_executor_declares_share_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert slots(None) == 1  # grade_submission without an executor: this thread, every core
    assert slots(LocalExecutor(3)) == 3
    assert slots(Elsewhere(jobs=2)) == 2
    assert slots(Elsewhere()) == 8  # as many as the cluster admits: each task's CPUs are its own
