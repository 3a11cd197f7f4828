"""The hand-in: what is staged with a notebook (grader.handin), how intake finds it in a class (folders, zips,
Canvas-prefixed files), what `grade check PATH` takes, and what a remote executor ships. Hostile hand-ins included:
links, data files posing as MNIST, checkpoints, zips that escape or explode, folders past the limits."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader import handin
from grader.api import grade_class, load_rubric, options_for
from grader.data.staging import data_binds
from grader.errors import GraderError
from grader.executors.shipped import Shipped
from grader.handin import CHECKPOINT_REASON, DATA_REASON, collect
from grader.intake import discover, hand_in_at
from tests.static_rubrics import COMMENTS_ONLY

NOTEBOOK = nbformat.writes(nbformat.v4.new_notebook(cells=[
    nbformat.v4.new_code_cell("# the model comes from the repo\nfrom model import Net\nmodel = Net()")]))



def repo(folder: Path, notebook: str = "S5/S5.ipynb") -> Path:
    """A course repo: the notebook in a subfolder, model.py at the root, utils.py beside the notebook."""
    (folder / notebook).parent.mkdir(parents=True, exist_ok=True)
    (folder / notebook).write_text(NOTEBOOK)
    (folder / "model.py").write_text("import torch.nn as nn\nclass Net(nn.Module):\n    pass\n")
    (folder / Path(notebook).parent / "utils.py").write_text("def train():\n    pass\n")
    return folder


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_collect_stages_code_and_leaves_out_data_checkpoints_and_links(tmp_path):
    root = repo(tmp_path / "r")
    raw = root / "S5" / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(10))  # labels the student wrote
    (root / "mnist.npz").write_bytes(b"PK")
    (root / "best_model.pth").write_bytes(b"weights")
    (root / "S5" / "model_1.pt2").write_bytes(b"PK")
    os.symlink("/etc/passwd", root / "helpers.py")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\x00")
    got = collect(root, root / "S5" / "S5.ipynb")
    assert got.notebook == "S5/S5.ipynb" and got.notebook_dir == "S5"
    assert [f.path for f in got.files] == ["S5/S5.ipynb", "model.py", "S5/utils.py"]
    assert got.files[1].sha256 == sha((root / "model.py").read_bytes())
    left = dict(got.left_out)
    assert left == {"S5/data/MNIST/raw/t10k-labels-idx1-ubyte": DATA_REASON, "mnist.npz": DATA_REASON,
                    "best_model.pth": CHECKPOINT_REASON, "S5/model_1.pt2": CHECKPOINT_REASON,
                    "helpers.py": "a symbolic link: links are never followed"}
    assert set(got.modules) >= {"model", "utils"}


def test_digest_is_the_notebooks_alone_and_changes_with_model_py(tmp_path):
    root = repo(tmp_path / "r")
    notebook = root / "S5" / "S5.ipynb"
    assert handin.alone(notebook).digest == sha(notebook.read_bytes())  # keys from before hand-ins stay valid
    before = collect(root, notebook).digest
    assert before != sha(notebook.read_bytes())
    (root / "model.py").write_text("class Net:\n    pass  # changed\n")
    assert collect(root, notebook).digest != before


def test_limits_keep_code_before_other_files(tmp_path, monkeypatch):
    root = repo(tmp_path / "r")
    monkeypatch.setattr(handin, "MAX_FILES", 3)
    monkeypatch.setattr(handin, "MAX_FILE_BYTES", 1000)
    for i in range(3):
        (root / f"plot{i}.png").write_bytes(bytes(10))
    (root / "huge.txt").write_bytes(bytes(2000))
    got = collect(root, root / "S5" / "S5.ipynb")
    assert [f.path for f in got.files] == ["S5/S5.ipynb", "model.py", "S5/utils.py"]
    left = dict(got.left_out)
    assert left["huge.txt"] == "2,000 bytes, over the 0 MiB a file of the hand-in may have"
    assert all(left[f"plot{i}.png"] == "past the 3 files a hand-in may stage" for i in range(3))


def test_stage_keeps_the_layout(tmp_path):
    root = repo(tmp_path / "r")
    got = collect(root, root / "S5" / "S5.ipynb")
    where = handin.stage(got, tmp_path / "work")
    assert where == tmp_path / "work" / "S5"
    assert (tmp_path / "work" / "model.py").read_bytes() == (root / "model.py").read_bytes()
    assert (where / "utils.py").is_file() and not (tmp_path / "work" / "helpers.py").exists()


def test_a_student_folder_is_the_hand_in(tmp_path):
    klass = tmp_path / "class"
    repo(klass / "Ann Lee_1001_assignsubmission_file_")
    [sub] = discover(klass, workspace=tmp_path / "workspace")
    assert sub.root == klass / "Ann Lee_1001_assignsubmission_file_" and sub.path.name == "S5.ipynb"
    assert sub.digest == collect(sub.root, sub.path).digest


def test_a_zip_in_a_student_folder_is_unpacked_and_canvas_prefixes_come_off(tmp_path):
    klass = tmp_path / "class"
    src = repo(tmp_path / "src" / "era-s5")
    folder = klass / "Ann Lee_1001_assignsubmission_file_"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "repo.zip", "w") as zf:  # a zip that wraps one folder, with macOS litter
        for path in src.rglob("*"):
            if path.is_file():
                zf.write(path, "era-s5/" + path.relative_to(src).as_posix())
        zf.writestr("__MACOSX/era-s5/S5/._S5.ipynb", "not a notebook")
    (klass / "leebo_1002_777_S5.ipynb").write_text(NOTEBOOK)  # Canvas: every file at the top, prefixed
    (klass / "leebo_1002_777_model.py").write_text("class Net:\n    pass\n")
    subs = discover(klass, workspace=tmp_path / "workspace")
    ann, bo = subs
    assert ann.path.relative_to(ann.root).as_posix() == "S5/S5.ipynb"
    assert (ann.root / "model.py").read_text() == (src / "model.py").read_text()
    assert not (ann.root / "repo.zip").exists()
    assert bo.path.name == "S5.ipynb" and (bo.root / "model.py").is_file()
    assert {f.path for f in collect(bo.root, bo.path).files} == {"S5.ipynb", "model.py"}


@pytest.mark.parametrize("entry", ["../../escape.py", "/tmp/abs.py"])
def test_a_student_zip_that_escapes_is_that_students_verdict(tmp_path, entry):
    klass = tmp_path / "class"
    repo(klass / "Ann Lee_1001_assignsubmission_file_")
    bad = klass / "Bo Kim_1002_assignsubmission_file_"
    bad.mkdir()
    with zipfile.ZipFile(bad / "repo.zip", "w") as zf:
        zf.writestr("S5.ipynb", NOTEBOOK)
        zf.writestr(entry, "print('out')")
    (tmp_path / "rubric.yaml").write_text(COMMENTS_ONLY)
    rubric = load_rubric(tmp_path / "rubric.yaml")
    results = {r.student: r for r in grade_class(klass, rubric, options_for(rubric), out=tmp_path / "out")}
    assert results["1001"].facts.verdict.kind is None  # the class goes on
    verdict = results["1002"].facts.verdict
    assert verdict.kind == "invalid_notebook"
    assert "could not be unpacked" in verdict.message and "points outside the folder" in verdict.message
    assert not (tmp_path / "escape.py").exists()


def test_a_student_zip_bomb_is_refused_at_the_hand_in_limit(tmp_path):
    klass = tmp_path / "class"
    bad = klass / "Bo Kim_1002_assignsubmission_file_"
    bad.mkdir(parents=True)
    with zipfile.ZipFile(bad / "repo.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("S5.ipynb", NOTEBOOK)
        zf.writestr("zeros.txt", bytes(200 << 20))
    [sub] = discover(klass, workspace=tmp_path / "workspace")
    assert sub.unreadable is not None and "zip bomb" in sub.unreadable and "MiB" in sub.unreadable


def test_the_class_folder_and_static_facts_list_the_staged_files(tmp_path):
    klass = tmp_path / "class"
    folder = repo(klass / "Ann Lee_1001_assignsubmission_file_")
    (folder / "best.pt").write_bytes(b"w")
    (tmp_path / "rubric.yaml").write_text(COMMENTS_ONLY)
    rubric = load_rubric(tmp_path / "rubric.yaml")
    [result] = list(grade_class(klass, rubric, options_for(rubric), out=tmp_path / "out"))
    files = result.facts.submission.files
    assert [f.path for f in files] == ["S5/S5.ipynb", "model.py", "S5/utils.py"]
    assert files[1].sha256 == sha((folder / "model.py").read_bytes()) and files[1].bytes > 0
    assert [(f.path, f.reason) for f in result.facts.submission.left_out] == [("best.pt", CHECKPOINT_REASON)]


def test_grade_check_path_is_a_folder_or_a_notebook_in_a_repo(tmp_path):
    root = repo(tmp_path / "r")
    assert hand_in_at(root) == (root / "S5" / "S5.ipynb", root)
    (root / ".git").mkdir()
    assert hand_in_at(root / "S5" / "S5.ipynb") == (root / "S5" / "S5.ipynb", root.resolve())
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "hw.ipynb").write_text(NOTEBOOK)
    assert hand_in_at(loose / "hw.ipynb") == (loose / "hw.ipynb", loose.resolve())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GraderError) as err:
        hand_in_at(empty)
    assert "no notebook (.ipynb)" in err.value.render() and "the notebook's path" in err.value.render()


def test_a_remote_executor_gets_the_whole_hand_in(tmp_path):
    klass = tmp_path / "class"
    repo(klass / "Ann Lee_1001_assignsubmission_file_")
    [sub] = discover(klass, workspace=tmp_path / "workspace")
    shipped = Shipped.pack(sub)
    back = shipped.unpack(tmp_path / "worker")
    assert back.root is not None and back.path.relative_to(back.root).as_posix() == "S5/S5.ipynb"
    assert collect(back.root, back.path).digest == sub.digest


def test_mnist_is_bound_relative_to_the_notebooks_folder_never_over_the_hand_in(tmp_path):
    work, staged = tmp_path / "job" / "work", tmp_path / "staged"
    binds = {inside for _, inside in data_binds(staged, work, ("../data", "..", "./mnist"), base=work / "S5")}
    assert work / "data" in binds and work / "S5" / "data" in binds and work / "S5" / "mnist" in binds
    assert work not in binds and work / "S5" not in binds  # `..` from S5 is the hand-in's root: never hidden


def test_a_file_name_that_is_not_utf8_is_left_out_in_words(tmp_path):
    root = repo(tmp_path / "r")
    (root / os.fsdecode(b"mod\xe9le.py")).write_text("x = 1\n")
    got = collect(root, root / "S5" / "S5.ipynb")
    assert ("mod\\xe9le.py", handin.NOT_UTF8_REASON) in got.left_out
    assert all(f.path.isprintable() for f in got.files)


def test_a_big_repository_keeps_what_the_notebook_imports(tmp_path, monkeypatch):
    """`grade check` on a notebook deep in a large repository: the limits keep the modules beside the notebook."""
    root = tmp_path / "course"
    for i in range(5):
        (root / "lib").mkdir(parents=True, exist_ok=True)
        (root / "lib" / f"m{i}.py").write_text("x = 1\n")
        (root / f"top{i}.txt").write_text("notes\n")
    repo(root / "sessions" / "s5", notebook="S5.ipynb")
    monkeypatch.setattr(handin, "MAX_FILES", 4)
    got = collect(root, root / "sessions" / "s5" / "S5.ipynb")
    assert [f.path for f in got.files] == ["sessions/s5/S5.ipynb", "sessions/s5/model.py", "sessions/s5/utils.py",
                                           "lib/m0.py"]
