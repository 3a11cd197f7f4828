"""What a sandbox wrote is read through grader.sandbox.readback only, and what it tries there ends in a verdict.

Each hostile notebook (tests/fixtures/readback, named after what it tries) runs through the real sandbox, graded
in a subprocess that measures the host grader's own peak memory (ru_maxrss) and the bytes it wrote (wchar,
/proc/self/io: every write and copy of the process) before and after it: a FIFO that would block the host, a link
to /dev/zero that would grow it, a record naming another student's model. A scan of the grader's host modules
fails when one of them reads a sandbox's folder directly.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from numpy.lib import format as npy_format

import grader
from grader.evaluate.job import read_back
from grader.pipeline import grade_facts
from grader.sandbox import SandboxSpec, run_sandboxed
from grader.sandbox.readback import Folder, Kind, Missing, NotAName, NotRegular, Symlink, TooBig, labels_from_npy
from grader.settings import Options

FIXTURES = Path(__file__).parent / "fixtures" / "readback"
GRADER = Path(grader.__file__).resolve().parent
CHECKOUT = GRADER.parent
ANOTHER_STUDENTS_MODEL = Path("/tmp/mnist-grader-another-student/model.pt2")  # as in make_notebooks.py
GOOD_MODEL = CHECKOUT / "examples" / "submissions" / "Ada Good_1001_assignsubmission_file_" / "model.pt2"

# what a hostile notebook may cost the host grader beyond what an honest one does (measured on a 2-core Xeon:
# nothing; the honest one's peak is about 84 MiB and it writes about 3 MiB, mostly its copy of the model)
MAX_EXTRA_PEAK_BYTES = 16 << 20
MAX_EXTRA_WRITTEN_BYTES = 256 << 10


# --- the reader --------------------------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / ".grader"
    out.mkdir()
    return out


def test_a_regular_file_is_read_whole(folder: Path) -> None:
    (folder / "run.json").write_text('{"cells": []}')
    with Folder(folder) as out:
        assert out.read("run.json", Kind.RECORD) == b'{"cells": []}'


def test_a_fifo_is_refused_at_once_instead_of_blocking(folder: Path) -> None:
    os.mkfifo(folder / "harness.json")
    with Folder(folder) as out, pytest.raises(NotRegular,
                                              match=r"^harness.json in .grader is a FIFO, not a regular file$"):
        out.read("harness.json", Kind.RECORD)


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/passwd", "."])
def test_a_link_is_never_followed(folder: Path, target: str) -> None:
    os.symlink(target, folder / "model.pt2")
    with Folder(folder) as out, pytest.raises(Symlink, match="model.pt2 in .grader is a symbolic link"):
        out.copy("model.pt2", Kind.MODEL, folder.parent / "copy.pt2")
    assert not (folder.parent / "copy.pt2").exists()


def test_a_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / ".grader")
    with pytest.raises(Symlink, match=r"^.grader is a symbolic link"):
        Folder(tmp_path / ".grader")


@pytest.mark.parametrize("name", ["/etc/passwd", "../model.pt2", "..", "", "a/b"])
def test_a_path_is_not_a_name(folder: Path, name: str) -> None:
    (folder.parent / "model.pt2").write_bytes(b"not yours")
    with Folder(folder) as out, pytest.raises(NotAName, match="is not a file name"):
        out.read(name, Kind.MODEL)


def test_a_file_over_its_cap_is_refused_by_its_size_before_reading(folder: Path) -> None:
    with open(folder / "eval.json", "wb") as f:  # sparse: 16 MiB + 1 byte that take no disk
        f.truncate(Kind.RESULT.cap + 1)
    with Folder(folder) as out, pytest.raises(TooBig, match="eval.json in .grader is larger than the 16 MiB the grader "
                                                            "reads of an evaluation result file"):
        out.read("eval.json", Kind.RESULT)
    with Folder(folder) as out, pytest.raises(TooBig):
        out.copy("eval.json", Kind.RESULT, folder.parent / "copy")
    assert not (folder.parent / "copy").exists()


def test_a_file_that_grows_while_read_stops_at_the_cap(folder: Path) -> None:
    # /proc files say size 0 and go on: the fstat check passes, the bounded read does not
    small = Kind.LOG
    with open(folder / "run.json", "wb") as f:
        f.write(b"x" * 10)
    with Folder(folder) as out:
        fd = out.descriptor("run.json", small)
        os.close(fd)
        with open(folder / "run.json", "ab") as f:
            f.write(b"x" * small.cap)
        with pytest.raises(TooBig):
            out.read("run.json", small)


def test_missing_is_its_own_error(folder: Path) -> None:
    with Folder(folder) as out, pytest.raises(Missing, match="^run.json in .grader is missing$"):
        out.read("run.json", Kind.RECORD)


def test_a_log_is_read_by_its_tail(folder: Path) -> None:
    (folder / "zygote.log").write_bytes(b"a" * (Kind.LOG.cap * 3) + b"the end")
    with Folder(folder) as out:
        tail = out.tail("zygote.log")
    assert len(tail) == Kind.LOG.cap and tail.endswith("the end")


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_predictions_are_parsed_without_unpickling() -> None:
    assert labels_from_npy(npy(np.arange(10))).tolist() == list(range(10))
    with pytest.raises(ValueError, match="one row of integers, not object"):
        labels_from_npy(npy(np.array([{"payload": 1}], dtype=object)))
    with pytest.raises(ValueError, match="one row of integers, not float64"):
        labels_from_npy(npy(np.zeros(10)))


def test_a_header_that_claims_more_labels_than_follow_allocates_nothing() -> None:
    for claimed in (9, 10**13):  # numpy's own reader would allocate 80 TB for the second before reading
        header = io.BytesIO()
        npy_format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (claimed,)})
        with pytest.raises(ValueError, match=f"the header says {claimed} labels of int64 and 32 bytes follow it"):
            labels_from_npy(header.getvalue() + np.arange(4).tobytes())


# --- nothing else reads a sandbox's folder -----------------------------------------------------------------------

# Modules that run inside a sandbox and read their own job there (the harness, the runner, the clean processes):
# what they read is the grader's job file and the staged images, never the host's.
INSIDE_THE_SANDBOX = {"execute/runner.py", "execute/kernel_harness.py", "execute/keras_harness.py",
                      "execute/kernel_pip.py", "execute/trained.py", "execute/cpu_budget.py", "execute/compat/keras.py",
                      "execute/compat/torch1.py", "execute/compat/__init__.py", "execute/compat/colab.py",
                      "execute/compat/tf_keras.py", "execute/compat/modules.py", "evaluate/clean.py",
                      "evaluate/zygote.py", "evaluate/keras_clean.py"}
READER = "sandbox/readback.py"
# reads the scan cannot tell apart from a sandbox's, each with why it is not one
NOT_A_SANDBOX = {"execute/job.py": {"stage(handin, workdir)"},  # the hand-in written into the scratch before the run
                 # git's blobs written into the link's scratch folder: no sandbox has run there
                 "links/fetch.py": {"_write(repo, scratch / 'tree', chosen.staged, blobs)"}}
# names a host module gives a sandbox's folder, and the files a sandbox leaves there
SCRATCH_NAMES = {"out_dir", "scratch", "workdir", "jobdir", "local_model", "model_file"}
SANDBOX_FILES = {"run.json", "harness.json", "executed.ipynb", "eval.json", "predictions.npy",
                 "unseen_predictions.npy", "model.pt2", "model.keras"}
READS = {"read_text", "read_bytes", "open", "load", "read", "fromfile", "memmap", "copy", "copy2",
         "copyfile", "copyfileobj", "copytree", "sendfile", "listdir", "scandir", "iterdir", "glob", "rglob"}


def bindings(scope: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) of every assignment, loop, comprehension and `with ... as` in a scope."""
    pairs: list[tuple[ast.AST, ast.AST]] = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            pairs += [(t, node.value) for t in node.targets]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None:
            pairs.append((node.target, node.value))
        elif isinstance(node, (ast.For, ast.comprehension)):
            pairs.append((node.target, node.iter))
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            pairs.append((node.optional_vars, node.context_expr))
    return pairs


def bound(target: ast.AST) -> set[str]:
    """The local names an assignment binds: `x`, `a, b` (an attribute or a subscript binds none)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List, ast.Starred)):
        elements = target.elts if not isinstance(target, ast.Starred) else [target.value]
        return set().union(*map(bound, elements))
    return set()


class Scope:
    """One top-level function or class (or the module's other statements): which names hold the reader's opened
    folders, and which hold paths into a sandbox's folder."""

    def __init__(self, node: ast.AST, seeds: frozenset[str] = frozenset(SCRATCH_NAMES | SANDBOX_FILES),
                 readers: Optional[dict[str, list[str]]] = None):
        self.node, self.readers = node, readers or {}
        pairs = bindings(node)
        # grader.sandbox.readback.Folder(...) and Execution.output() open a folder for the reader
        self.folders = {n for target, value in pairs if isinstance(value, ast.Call) and (
            (isinstance(value.func, ast.Name) and value.func.id == "Folder")
            or (isinstance(value.func, ast.Attribute) and value.func.attr == "output")) for n in bound(target)}
        self.folders |= {a.arg for a in ast.walk(node) if isinstance(a, ast.arg) and a.annotation is not None
                         and ast.unparse(a.annotation) == "Folder"}
        self.tainted = set(seeds)
        while True:  # whatever is computed from a tainted name is tainted (`files = [scratch / "x"]; for f in files`)
            more = {n for target, value in pairs if self.names_in(value) & self.tainted for n in bound(target)}
            if more <= self.tainted:
                break
            self.tainted |= more

    def through_the_reader(self, node: ast.AST) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in self.folders)

    def names_in(self, node: ast.AST) -> set[str]:
        """The names, attributes and strings an expression is built from, less what it reads through the reader."""
        if self.through_the_reader(node):
            return set()
        own = {node.id} if isinstance(node, ast.Name) else {node.attr} if isinstance(node, ast.Attribute) else \
            {node.value} if isinstance(node, ast.Constant) and isinstance(node.value, str) else set()
        return own.union(*(self.names_in(child) for child in ast.iter_child_nodes(node)))

    def direct_reads(self) -> list[str]:
        found = []
        for node in ast.walk(self.node):
            if not isinstance(node, ast.Call) or self.through_the_reader(node):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in READS:
                parts = [func.value] if isinstance(func, ast.Attribute) else []
                parts += node.args + [k.value for k in node.keywords]
            elif name in self.readers:  # a function of the grader's that reads what it is given
                params = self.readers[name]
                parts = [a for param, a in zip(params, node.args, strict=False) if param]
                parts += [k.value for k in node.keywords if k.arg in params]
            else:
                continue
            if set().union(set(), *map(self.names_in, parts)) & self.tainted:
                found.append(f"{node.lineno}: {ast.unparse(node)[:120]}")
        return found


def top_level(tree: ast.Module) -> list[ast.AST]:
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def reading_functions(source: str) -> dict[str, list[str]]:
    """Module-level functions that read a file at a path given as a parameter: name -> their positional
    parameters, each the parameter's name where it is read, else "" (`read_record(path, kind)` -> ["path", ""])."""
    readers = {}
    for fn in top_level(ast.parse(source)):
        if isinstance(fn, ast.ClassDef):
            continue
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
        read = [p if Scope(fn, seeds=frozenset({p})).direct_reads() else "" for p in params]
        if any(read):
            readers[fn.name] = read
    return readers


def direct_reads(source: str, readers: Optional[dict[str, list[str]]] = None) -> list[str]:
    """Calls that read a file (open, read_text, np.load, shutil.copy*, ..., or a function of `readers`) on a path
    into a sandbox's folder, not through the reader: "line: call" for each. Each top-level function or class is a
    scope of its own."""
    tree = ast.parse(source)
    readers = {**(readers or {}), **reading_functions(source)}
    scopes = top_level(tree)
    module = ast.Module(body=[n for n in tree.body if n not in scopes], type_ignores=[])
    return sorted({read for scope in [module, *scopes] for read in Scope(scope, readers=readers).direct_reads()})


def host_modules() -> dict[str, str]:
    return {path.relative_to(GRADER).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(GRADER.rglob("*.py"))
            if path.relative_to(GRADER).as_posix() not in INSIDE_THE_SANDBOX | {READER}}


def test_no_host_module_reads_a_sandboxs_folder_but_the_reader() -> None:
    modules = host_modules()
    readers = {name: params for source in modules.values() for name, params in reading_functions(source).items()}
    offenders = {}
    for relative, source in modules.items():
        reads = [r for r in direct_reads(source, readers)
                 if r.split(": ", 1)[1] not in NOT_A_SANDBOX.get(relative, set())]
        if reads:
            offenders[relative] = reads
    assert not offenders, ("these host modules read what a sandbox wrote without grader.sandbox.readback "
                           f"(use Folder(...).read / .copy / .labels):\n{json.dumps(offenders, indent=2)}")


@pytest.mark.parametrize("source", [
    'record = json.loads((scratch / "eval.json").read_text())',
    'files = [scratch / "predictions.npy"]\narrays = [np.load(f) if f.exists() else None for f in files]',
    'def read(scratch):\n    path = scratch / "eval.json"\n    with open(path) as fh:\n        return fh.read()',
    'def read_record(path, kind):\n    return path.read_text()\n\nrun = read_record(out_dir / "run.json", RunRecord)',
    'shutil.copyfile(model_file, local_model)',
    'nb = nbformat.read(str(execution.out_dir / "executed.ipynb"), as_version=4)',
    'fd = os.open(out_dir / name, os.O_RDONLY)',
    'text = Path(job["workdir"], "run.json").read_bytes()',
])
def test_the_scan_catches_a_direct_read(source: str) -> None:
    assert direct_reads(source), source


@pytest.mark.parametrize("source", [
    'text = path.read_text(encoding="utf-8")',  # a submission the instructor handed the grader
    'data = json.loads((self.folder / f"{key}.json").read_text())',  # the facts cache
    'with Folder(out_dir) as out:\n    out.read("harness.json", Kind.RECORD)',  # the reader itself, by name
    'with Folder(scratch) as folder:\n    record = json.loads(folder.read("eval.json", Kind.RESULT))',
    'def keep(out: Folder):\n    out.copy("model.pt2", kind, target)',
    '(out_dir / "job.json").write_text(json.dumps(job))',  # writing the job the sandbox reads
])
def test_the_scan_lets_the_graders_own_reads_be(source: str) -> None:
    assert not direct_reads(source), source


# --- hostile notebooks, graded for real --------------------------------------------------------------------------

HOSTILE = {  # fixture -> (verdict, what the message says)
    "harness_record_is_a_fifo": ("crash", "harness.json in .grader is a FIFO, not a regular file"),
    "harness_record_links_to_dev_zero": ("crash", "harness.json in .grader is a symbolic link"),
    "run_record_links_to_dev_zero": ("crash", "run.json in .grader is a symbolic link"),
    "export_names_another_students_model": ("crash", "harness.json in .grader is malformed"),
    "export_names_a_file_above_the_folder": ("crash", "harness.json in .grader is malformed"),
    "model_is_a_fifo": ("bad_model", "model.pt2 in .grader is a FIFO, not a regular file"),
    "model_links_to_dev_zero": ("bad_model", "model.pt2 in .grader is a symbolic link"),
    "output_folder_is_a_link": ("crash", ".grader is a symbolic link"),
}
# the runner writes the executed notebook last, for the printed accuracy only: refused, it is no claim, and the
# model is measured as it is (an untrained one, at chance)
NOT_READ = {"executed_notebook_links_to_dev_zero": "ok"}
ORDER = ["honest_tiny_model", *HOSTILE, *NOT_READ, "honest_tiny_model"]

GRADE_ALL = textwrap.dedent('''
    import json, resource, sys, time
    from pathlib import Path
    from grader.pipeline import grade_facts
    from grader.settings import Options, RunLimits

    def written():
        return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["wchar"])

    limits = RunLimits(wall_seconds=240, memory_bytes=2 << 30)
    for i, name in enumerate(sys.argv[4:]):
        options = Options(data=sys.argv[1], limits=limits, keep=Path(sys.argv[3]) / f"{i}-{name}")
        before, started = written(), time.monotonic()
        facts = grade_facts(Path(sys.argv[2]) / f"{name}.ipynb", options)
        print(json.dumps({"name": name, "facts": json.loads(facts.model_dump_json()), "written": written() - before,
                          "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                          "seconds": round(time.monotonic() - started, 1)}), flush=True)
''')


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> Path:
    """Where each run keeps its executed notebook and model (--keep): 0-honest_tiny_model/, ..."""
    return tmp_path_factory.mktemp("kept")


@pytest.fixture(scope="module")
def graded(real_mnist_dir, bwrap, tmp_path_factory, kept) -> dict[str, list[dict]]:
    """Every fixture graded one after another by one host grader process: honest first and last."""
    ANOTHER_STUDENTS_MODEL.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(GOOD_MODEL, ANOTHER_STUDENTS_MODEL)
    tmp = tmp_path_factory.mktemp("host-tmp")
    proc = subprocess.run([sys.executable, "-c", GRADE_ALL, str(real_mnist_dir), str(FIXTURES), str(kept), *ORDER],
                          cwd=CHECKOUT, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs: dict[str, list[dict]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            run = json.loads(line)
            runs.setdefault(run["name"], []).append(run)
    assert list(os.listdir(tmp)) == [] or all(p.startswith("mnist-grader-zygote") for p in os.listdir(tmp))
    print("\n".join(f"{r['name']}: verdict {r['facts']['verdict']['kind']}, {r['seconds']} s, peak "
                    f"{r['peak'] / 2**20:.1f} MiB, wrote {r['written'] / 2**10:.1f} KiB"
                    for name in runs for r in runs[name]))
    return runs


def test_an_honest_notebook_is_measured_before_and_after_the_hostile_ones(graded) -> None:
    first, last = graded["honest_tiny_model"]
    for run in (first, last):
        assert run["facts"]["verdict"]["kind"] == "ok", run["facts"]["verdict"]["message"]
        assert run["facts"]["eval"]["accuracy"] is not None and run["facts"]["eval"]["accuracy"] < 30  # untrained
    assert last["facts"]["eval"]["accuracy"] == first["facts"]["eval"]["accuracy"]
    # the facts say how the sandbox was held: a root grader's sandbox runs as an unprivileged host uid
    isolation = first["facts"]["grading"]["isolation"]
    assert "disk: " in isolation and ("sandbox as host uid 65534" in isolation if os.geteuid() == 0 else
                                      f"grader's own uid {os.geteuid()}" in isolation), isolation


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_output_folder_ends_in_a_verdict_that_names_the_file(graded, name: str) -> None:
    (run,) = graded[name]
    verdict, eval_ = run["facts"]["verdict"], run["facts"]["eval"]
    kind, says = HOSTILE[name]
    assert (verdict["kind"], eval_["accuracy"]) == (kind, None), verdict["message"]
    assert says in verdict["message"], verdict["message"]
    assert "leave" in verdict["message"]  # and what to do


def test_a_record_naming_another_students_model_gets_none_of_its_accuracy(graded) -> None:
    for name in ("export_names_another_students_model", "export_names_a_file_above_the_folder"):
        (run,) = graded[name]
        assert run["facts"]["eval"]["accuracy"] is None and run["facts"]["verdict"]["kind"] != "ok"
        assert "'export', 'file'" in run["facts"]["verdict"]["message"]  # the field at fault


def test_an_executed_notebook_that_links_to_dev_zero_is_not_read(graded) -> None:
    (run,) = graded["executed_notebook_links_to_dev_zero"]
    assert run["facts"]["verdict"]["kind"] == "ok" and run["facts"]["claims"]["run_accuracy"] is None
    assert run["facts"]["eval"]["accuracy"] < 30  # the untrained model, measured


def test_keep_copies_regular_files_only(graded, kept) -> None:
    assert sorted(os.listdir(kept / "0-honest_tiny_model")) == ["executed.ipynb", "model.pt2"]
    for name in ("model_links_to_dev_zero", "model_is_a_fifo"):
        (folder,) = kept.glob(f"*-{name}")
        assert sorted(os.listdir(folder)) == ["executed.ipynb"]  # the model that is no file is not kept, nor copied
    (folder,) = kept.glob("*-executed_notebook_links_to_dev_zero")
    assert sorted(os.listdir(folder)) == ["model.pt2"]
    (folder,) = kept.glob("*-output_folder_is_a_link")
    assert os.listdir(folder) == []


@pytest.mark.parametrize("name", [*HOSTILE, *NOT_READ])
def test_the_host_grader_stays_within_its_bounds(graded, name: str) -> None:
    honest = graded["honest_tiny_model"][0]
    (run,) = graded[name]
    assert run["peak"] - honest["peak"] < MAX_EXTRA_PEAK_BYTES, (run["peak"], honest["peak"])
    assert run["written"] - honest["written"] < MAX_EXTRA_WRITTEN_BYTES, (run["written"], honest["written"])
    assert run["seconds"] < 240


# --- the cold evaluation's files, and a model handed in ---------------------------------------------------------

@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("plant, says", [
    ("ln -s /dev/zero eval.json", "eval.json in the evaluation's folder is a symbolic link"),
    ("mkfifo eval.json", "eval.json in the evaluation's folder is a FIFO"),
    ("echo '{}' > eval.json && ln -s /dev/zero predictions.npy",
     "predictions.npy in the evaluation's folder is a symbolic link"),
    ("echo '{}' > eval.json && mkfifo predictions.npy", "predictions.npy in the evaluation's folder is a FIFO"),
    ("echo '{}' > eval.json && truncate -s 5M predictions.npy",
     "predictions.npy in the evaluation's folder is larger than the 4 MiB the grader reads of a predictions file"),
    ("python3 -c \"print('[' * 100000)\" > eval.json", "the evaluation's result could not be read"),
])
def test_what_a_clean_evaluation_plants_is_read_as_untrusted(tmp_path: Path, plant: str, says: str) -> None:
    scratch = tmp_path / "eval"
    result = run_sandboxed(["sh", "-c", plant], SandboxSpec(scratch=scratch, wall_seconds=30))
    assert result.returncode == 0, result
    raw = read_back(scratch, "")
    assert raw.record is None and raw.problem is not None and says in raw.problem, raw.problem


@pytest.mark.parametrize("hand_in", ["fifo", "link to /dev/zero"])
def test_a_handed_in_model_that_is_not_a_file_is_bad_model(tmp_path: Path, real_mnist_dir, hand_in: str) -> None:
    notebook = CHECKOUT / "examples" / "submissions" / "Ada Good_1001_assignsubmission_file_" / "notebook.ipynb"
    model = tmp_path / "model.pt2"
    os.mkfifo(model) if hand_in == "fifo" else os.symlink("/dev/zero", model)
    facts = grade_facts(notebook, Options(data=str(real_mnist_dir), mode="evaluate"), model_file=model)
    assert facts.verdict.kind == "bad_model" and facts.eval.accuracy is None
    assert "the model file could not be read" in facts.verdict.message
    assert ("is a FIFO, not a regular file" if hand_in == "fifo" else "is a character device") in facts.verdict.message
