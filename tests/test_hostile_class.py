"""A class of three where one submission is hostile (issue 20, "Must show"): each class is two honest students
and one who attacks the grader in one of the issue's ways, graded through the real CLI (`grade SUBMISSIONS
--rubric ... --mode ... --out ...`) in a process of its own. The batch finishes, the gradebook lists all three,
the honest two get exactly what they get in the same class with the hostile one replaced by an honest one, and
the hostile one gets a non-passing verdict, no accuracy credit, and a report that names what was found.

Every attack reuses the fixture its own test module made (the model-file payloads of
tests/fixtures/models/hostile_pt2.py, the lookup and hidden-weights modules of tests/test_lookup_shapes.py and
tests/test_stored_numbers.py, the notebooks of tests/fixtures/readback, tests/fixtures/exec and
tests/fixtures/counters, the lone surrogate of tests/test_class_never_stops.py).

The host grader's own peak memory (VmHWM of the process that runs the CLI) and the bytes it wrote (wchar of
/proc/self/io) are measured for each class and compared with the honest class's; the peak of its sandboxed
children (RUSAGE_CHILDREN) is reported beside them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import grader
from tests.exported import exported
from tests.fixtures.models.hostile_pt2 import hostile
from tests.test_class_never_stops import _with_lone_surrogate
from tests.test_lookup_shapes import OneHotByComparisons, WhereChoosesRows
from tests.test_stored_numbers import WeightsHiddenAsBnStatistics

CHECKOUT = Path(grader.__file__).resolve().parents[1]
FIXTURES = CHECKOUT / "tests" / "fixtures"
EXAMPLES = CHECKOUT / "examples" / "submissions"
ADA, ED, DI = (EXAMPLES / f"{name}_assignsubmission_file_"
               for name in ("Ada Good_1001", "Ed Old_1005", "Di Terse_1004"))
HOSTILE_FOLDER = "Hal Hostile_1009_assignsubmission_file_"  # the third student's folder in evaluate mode
HONEST_TINY = FIXTURES / "readback" / "honest_tiny_model.ipynb"
ANOTHER_STUDENTS_MODEL = Path("/tmp/mnist-grader-another-student/model.pt2")  # as in tests/fixtures/readback
PAYLOAD_MARKER = "hostile-payload-ran"  # the model file's payload would write this file where it runs

# Limits of every execute-mode class (the disk ones small enough that the disk attacks reach them quickly)
EXECUTE = ["--mode", "execute", "--timeout", "240", "--disk", "50M", "--disk-files", "1000"]
# What a hostile class may cost the host grader beyond the honest class (as tests/test_readback.py allows one
# notebook): a copy of /dev/zero or a FIFO's endless wait would be far beyond either.
MAX_EXTRA_PEAK_BYTES = 16 << 20
MAX_EXTRA_WRITTEN_BYTES = 1 << 20  # beyond what was handed in: the host copies each model file once

RUN_CLI = textwrap.dedent('''
    import json, resource, sys
    from pathlib import Path
    from grader.cli.main import main

    code = main(sys.argv[2:])
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    # VmHWM: this process's own peak since it started (ru_maxrss would carry the RSS of the pytest process it
    # was forked from: exec keeps the old memory's high-water mark)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    Path(sys.argv[1]).write_text(json.dumps({
        "code": code, "written": int(io["wchar"]), "peak": int(status["VmHWM"].split()[0]) * 1024,
        "children_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
    sys.exit(code)
''')


@dataclass
class Graded:
    code: int
    stderr: str
    rows: dict[str, dict[str, str]]  # the gradebook, by student id
    out: Path
    peak: int  # the host grader's own peak memory, bytes
    children_peak: int  # the largest of its children (sandboxes, kernels, evaluators), bytes
    written: int  # bytes the host grader wrote
    handed_in: int  # bytes of the class's files
    seconds: float
    left: list[str]  # what the run left in its TMPDIR (removed after)

    def facts(self, student: str) -> dict:
        return json.loads((self.out / student / "facts.json").read_text())

    def report(self, student: str) -> str:
        return " ".join((self.out / student / "report.md").read_text().split())


def grade_class(folder: Path, rubric: str, *flags: str, data: Path) -> Graded:
    """`grade FOLDER --rubric RUBRIC ...` in a process of its own (the CLI's `main`, as `python3 -m grader`
    runs it), with its own TMPDIR; what it measured of itself comes back in a file."""
    out, measured = folder.parent / f"{folder.name}-out", folder.parent / f"{folder.name}-measured.json"
    # its TMPDIR, where it stages and evaluates: open to the unprivileged uid a root grader sandboxes as (pytest's
    # own folders are root's alone), kept beside the class's folders for what a hostile student may leave there
    tmp = Path(tempfile.mkdtemp(prefix="hostile-class-"))
    tmp.chmod(0o755)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", RUN_CLI, str(measured), str(folder), "--rubric", rubric,
                           "--out", str(out), "--data", str(data), "--jobs", "1", *flags],
                          cwd=CHECKOUT, env={**os.environ, "TMPDIR": str(tmp)}, capture_output=True, text=True,
                          timeout=1200)
    seconds = time.monotonic() - started
    left = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))
    shutil.rmtree(tmp)
    assert measured.is_file(), done.stderr[-3000:]  # the CLI returned: the batch finished
    figures = json.loads(measured.read_text())
    assert (out / "gradebook.csv").is_file(), done.stderr[-3000:]
    with open(out / "gradebook.csv", newline="") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    return Graded(done.returncode, done.stderr, rows, out, figures["peak"], figures["children_peak"],
                  figures["written"], sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()), seconds,
                  left)


# --- the classes -------------------------------------------------------------------------------------------------

Student = Callable[[Path], None]  # writes a student's submission at the path it is given


def evaluate_class(folder: Path, third: Student) -> Path:
    """Ada and Ed as handed in (notebook and model.pt2), and a third student whose folder `third` fills."""
    for source in (ADA, ED):
        shutil.copytree(source, folder / source.name)
    (folder / HOSTILE_FOLDER).mkdir(parents=True)
    third(folder / HOSTILE_FOLDER)
    return folder


def handed_in(model: bytes) -> Student:
    """A student who hands in Di's notebook and `model` as model.pt2."""
    def fill(student: Path) -> None:
        shutil.copy(DI / "notebook.ipynb", student / "notebook.ipynb")
        (student / "model.pt2").write_bytes(model)
    return fill


def saved(module: torch.nn.Module) -> bytes:
    """`module` exported as the notebook harness exports a student's model, saved as torch.export.save does."""
    with tempfile.TemporaryDirectory() as folder:
        torch.export.save(exported(module), Path(folder) / "model.pt2")
        return (Path(folder) / "model.pt2").read_bytes()


def execute_class(folder: Path, third: Student) -> Path:
    """Two students who hand in the tiny honest notebook, and a third whose notebook `third` writes."""
    folder.mkdir(parents=True)
    for student in ("amy_2001", "bo_2002"):
        shutil.copy(HONEST_TINY, folder / f"{student}_1_hw.ipynb")
    third(folder / "hal_2009_1_hw.ipynb")
    return folder


def notebook(path: Path) -> Student:
    return lambda target: shutil.copy(path, target)


def lone_surrogate(target: Path) -> None:
    _with_lone_surrogate(HONEST_TINY, target)


@dataclass(frozen=True)
class Klass:
    """How a class of three is made and graded: two honest students, and a third."""
    rubric: str
    flags: list[str]
    make: Callable[[Path, Student], Path]  # the class's folder, with the third student in it
    honest_third: Callable[[], Student]
    honest: tuple[str, str]  # the honest two's ids
    third: str  # the third student's id


KLASSES = {
    "evaluate": Klass("mnist-s3", ["--mode", "evaluate"], evaluate_class,
                      lambda: handed_in((DI / "model.pt2").read_bytes()), ("1001", "1005"), "1009"),
    "execute": Klass("mnist-s3", EXECUTE, execute_class, lambda: notebook(HONEST_TINY), ("2001", "2002"),
                     "2009"),
    "execute-s4": Klass("mnist-s4", EXECUTE, execute_class,
                        lambda: notebook(FIXTURES / "counters" / "honest_three_epochs.ipynb"), ("2001", "2002"),
                        "2009"),
}


@dataclass(frozen=True)
class Attack:
    klass: str  # a key of KLASSES
    third: Callable[[], Student]  # the hostile student, built when the test runs
    verdict: str  # the hostile student's verdict
    says: tuple[str, ...]  # in the hostile student's report

ATTACKS = {
    "model_file_runs_code_when_loaded": Attack(
        "evaluate", lambda: handed_in(hostile("sample_inputs", PAYLOAD_MARKER)), "bad_model",
        ("was not loaded", "data/sample_inputs/model.pt/data.pkl", "imports `__builtin__.eval`")),
    "model_looks_answers_up": Attack(
        "evaluate", lambda: handed_in(saved(WhereChoosesRows())), "lookup",
        ("the exported model looks answers up instead of computing them",)),
    # `&` exports as aten.__and__: loaded (aten has it), then reported with the comparisons that build the one-hot
    "model_builds_a_one_hot_from_comparisons": Attack(
        "evaluate", lambda: handed_in(saved(OneHotByComparisons())), "lookup",
        ("looks answers up instead of computing them", "a comparison at node `ge` (`aten.ge.Tensor`)")),
    "weights_hidden_as_batch_norm_statistics": Attack(
        "evaluate", lambda: handed_in(saved(WeightsHiddenAsBnStatistics())), "ok",
        ("learned numbers is over the 20,000 budget", "111,330 other stored numbers")),
    "harness_record_is_a_fifo": Attack(
        "execute", lambda: notebook(FIXTURES / "readback" / "harness_record_is_a_fifo.ipynb"), "crash",
        ("harness.json in .grader is a FIFO, not a regular file",)),
    "harness_record_links_to_dev_zero": Attack(
        "execute", lambda: notebook(FIXTURES / "readback" / "harness_record_links_to_dev_zero.ipynb"), "crash",
        ("harness.json in .grader is a symbolic link",)),
    "export_names_another_students_model": Attack(
        "execute", lambda: notebook(FIXTURES / "readback" / "export_names_another_students_model.ipynb"), "crash",
        ("harness.json in .grader is malformed", "'export', 'file'")),
    "write_to_a_deleted_file": Attack(
        "execute", lambda: notebook(FIXTURES / "exec" / "write_to_a_deleted_file.ipynb"), "disk",
        ("filled its disk quota (50M or 1,000 files",)),
    "make_empty_files": Attack(
        "execute", lambda: notebook(FIXTURES / "exec" / "make_empty_files.ipynb"), "disk",
        ("filled its disk quota (50M or 1,000 files",)),
    "lone_surrogate_in_a_cell": Attack(
        "execute", lambda: lone_surrogate, "invalid_notebook",
        ("code cell 1, line 2 of its source, holds a character that is not valid Unicode",)),
    "epoch_counter_set_lower_in_a_closure": Attack(
        "execute-s4", lambda: notebook(FIXTURES / "counters" / "counter_set_lower_in_closure.ipynb"), "ok",
        ("counted 12 epochs, but the model's batch-norm counters show at least 40 epochs",)),
}

# gradebook columns that hold the look-alike comparison: a hostile notebook that shares the honest ones' cells
# is a look-alike where an honest copy is one too, so only these may differ
CLASS_LEVEL = {"similar_to"}


@pytest.fixture(scope="module")
def honest_classes(bwrap) -> dict[str, Graded]:
    """Each kind of class with the third student honest, graded once (by `honest_class`, when a test first needs
    it): the honest students' grades and the host grader's figures every hostile class is compared with."""
    return {}


def honest_class(name: str, cache: dict[str, Graded], tmp_path_factory, data: Path) -> Graded:
    if name not in cache:
        klass = KLASSES[name]
        folder = klass.make(tmp_path_factory.mktemp(f"honest-{name}") / "class", klass.honest_third())
        graded = cache[name] = grade_class(folder, klass.rubric, *klass.flags, data=data)
        print(f"\nhonest {name} class: exit {graded.code}, {graded.seconds:.0f} s, host peak "
              f"{graded.peak / 2**20:.1f} MiB, children peak {graded.children_peak / 2**20:.1f} MiB, "
              f"wrote {graded.written / 2**10:.0f} KiB")
    return cache[name]


@pytest.mark.parametrize("name", ATTACKS)
def test_one_hostile_student_leaves_the_other_two_graded_and_the_gradebook_written(
        name, tmp_path, tmp_path_factory, honest_classes, real_mnist_dir):
    attack = ATTACKS[name]
    klass = KLASSES[attack.klass]
    if name == "export_names_another_students_model":  # the model its record names: Ada's, a 99% one
        ANOTHER_STUDENTS_MODEL.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ADA / "model.pt2", ANOTHER_STUDENTS_MODEL)
    honest = honest_class(attack.klass, honest_classes, tmp_path_factory, real_mnist_dir)
    graded = grade_class(klass.make(tmp_path / "class", attack.third()), klass.rubric, *klass.flags,
                         data=real_mnist_dir)
    print(f"\n{name}: exit {graded.code}, {graded.seconds:.0f} s, host peak {graded.peak / 2**20:.1f} MiB "
          f"(honest class {honest.peak / 2**20:.1f}), children peak {graded.children_peak / 2**20:.1f} MiB "
          f"(honest class {honest.children_peak / 2**20:.1f}), wrote {graded.written / 2**10:.0f} KiB "
          f"(honest class {honest.written / 2**10:.0f})")

    # the batch finished as an honest one does, and the gradebook lists all three
    assert honest.code == 0, honest.stderr[-3000:]
    assert graded.code == 0, graded.stderr[-3000:]
    assert sorted(graded.rows) == sorted([*klass.honest, klass.third])
    assert "3 graded" in graded.stderr, graded.stderr[-3000:]

    # the honest two: what they get beside an honest third
    for student in klass.honest:
        mine, theirs = graded.rows[student], honest.rows[student]
        assert {k: v for k, v in mine.items() if k not in CLASS_LEVEL} == \
               {k: v for k, v in theirs.items() if k not in CLASS_LEVEL}, student
        assert graded.facts(student)["eval"]["accuracy"] == honest.facts(student)["eval"]["accuracy"] is not None
        assert (graded.out / student / "report.html").is_file()

    # the hostile one: its verdict, not passed, no accuracy credit, what was found in its report
    row, facts = graded.rows[klass.third], graded.facts(klass.third)
    assert row["verdict"] == facts["verdict"]["kind"] == attack.verdict, facts["verdict"]["message"]
    assert row["passed"] == "FALSE"
    assert float(row["accuracy"] or 0) == 0, row
    report = graded.report(klass.third)
    for says in attack.says:
        assert says in report, report[:3000]

    # the host grader: within its bounds whatever the third student did
    assert graded.peak - honest.peak < MAX_EXTRA_PEAK_BYTES, (graded.peak, honest.peak)
    assert (graded.written - graded.handed_in) - (honest.written - honest.handed_in) < MAX_EXTRA_WRITTEN_BYTES, \
        (graded.written, graded.handed_in, honest.written, honest.handed_in)
    if name == "model_file_runs_code_when_loaded":
        # where the clean evaluation ran (its TMPDIR) and wherever this test wrote: no file the payload made
        assert not [p for p in graded.left if PAYLOAD_MARKER in p] and not list(tmp_path.rglob(PAYLOAD_MARKER))
