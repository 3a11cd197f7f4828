"""Link submissions: a GitHub link handed in instead of a notebook, fetched with the git CLI from a real git
server on 127.0.0.1 (dumb HTTP), with git's url.<base>.insteadOf pointing https://github.com/ at it."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from grader import handin
from grader.cli.main import main
from grader.handin import CHECKPOINT_REASON, DATA_REASON, LINK_REASON, MAX_FILE_BYTES, UNSAFE_PATH_REASON, collect
from grader.links import LinkError, fetch, find_link, parse_link
from tests.gitserver import git, github_at, publish, serving

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"
RUBRIC = """\
id: cells
title: Cells
mode: static
{extra}items:
  - id: cells
    title: At least three code cells
    fact: notebook.code_cells
    ge: 3
    points: 5
"""


def notebook(cells: int) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
         "source": f"# cell {i}\nx{i} = {i}"} for i in range(cells)]})


BIG = MAX_FILE_BYTES + 1


def _modular(work: Path, commits: dict[str, str], submodule: str) -> None:
    """A course repository in the modular layout: hw/notebook.ipynb importing hw/model.py and hw/utils.py, beside
    them MNIST as .npz, a checkpoint, a symbolic link, a submodule and a file over the size limit, and a .py file
    nine levels down; model.py is changed on 2 Dec, after the deadline."""
    git("init", "-q", "-b", "main", cwd=work)
    hw = work / "hw"
    hw.mkdir()
    (hw / "notebook.ipynb").write_text(notebook(3))
    (hw / "utils.py").write_text("def train(model):\n    return model\n")
    (hw / "mnist.npz").write_bytes(b"PK data")
    (hw / "model.pt").write_bytes(b"\x80\x02 checkpoint")
    (hw / "big.bin").write_bytes(b"\0" * BIG)
    os.symlink("/etc/passwd", hw / "latest.py")
    (work / "README.md").write_text("# My MNIST\n")
    (work / "notes" / "a" / "b" / "c" / "d" / "e" / "f" / "g").mkdir(parents=True)
    (work / "notes" / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "deep.py").write_text("x = 1\n")
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    for label, width, when in (("nov29", 8, "2026-11-29T10:00:00+00:00"), ("dec02", 16, "2026-12-02T10:00:00+00:00")):
        (hw / "model.py").write_text(f"class Net:\n    width = {width}\n")
        git("add", "-A", cwd=work, when=when)
        git("update-index", "--add", "--cacheinfo", f"160000,{submodule},hw/vendor", cwd=work)
        git("commit", "-q", "-m", label, cwd=work, when=when)
        commits[f"modular-{label}"] = git("rev-parse", "HEAD", cwd=work)


def _crafted(bare: Path, outside: Path) -> None:
    """A repository no git client would make, written object by object: on main a notebook beside a tree named
    `..` (holding escaped.py), blobs named `../../evil.py` and `/abs.py`, a `.git/hooks/post-checkout`, two
    entries named dup.py, one whose name is not UTF-8, and `sub` twice: a link to `outside`, and a folder
    holding model.py; on `only-unsafe` the one notebook lies under `..`; on `long-name` its name is longer
    than a file name may be."""
    git("init", "-q", "--bare", cwd=bare)

    def obj(kind: str, data: bytes) -> str:
        return subprocess.run(["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"], cwd=bare,
                              input=data, check=True, capture_output=True).stdout.decode().strip()

    def tree(*entries: tuple[str, str | bytes, str]) -> str:  # (mode, name, object); names may hold '/' here
        return obj("tree", b"".join(mode.encode() + b" " + (name if isinstance(name, bytes) else name.encode())
                                    + b"\0" + bytes.fromhex(sha) for mode, name, sha in entries))

    code = obj("blob", b"print('outside the scratch folder')\n")
    nb = obj("blob", notebook(3).encode())
    hooks = tree(("40000", "hooks", tree(("100755", "post-checkout", code))))
    for branch, root in (
            ("main", tree(("100644", "../../evil.py", code), ("40000", "..", tree(("100644", "escaped.py", code))),
                          ("100644", "/abs.py", code), ("40000", ".git", hooks), ("100644", "dup.py", code),
                          ("100644", "dup.py", nb), ("100644", b"caf\xe9.py", code), ("100644", "nb.ipynb", nb),
                          ("120000", "sub", obj("blob", str(outside).encode())),
                          ("40000", "sub", tree(("100644", "model.py", code))))),
            ("only-unsafe", tree(("40000", "..", tree(("100644", "hw.ipynb", nb))))),
            ("long-name", tree(("100644", "n" * 300 + ".ipynb", nb)))):
        commit = git("commit-tree", "-m", branch, root, cwd=bare)
        git("update-ref", f"refs/heads/{branch}", commit, cwd=bare)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=bare)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """student/s3 on a dumb-HTTP git server on 127.0.0.1: three commits (1, 2 and 4 cells in S3/hw.ipynb)
    on 28 Nov, 30 Nov and 3 Dec, and S4/ with two notebooks; student/modular (`_modular`) and student/crafted
    (`_crafted`). Returns (base URL, {label: commit})."""
    root = tmp_path_factory.mktemp("git")
    work = root / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    commits = {}
    (work / "S4").mkdir()
    (work / "S4" / "a.ipynb").write_text(notebook(3))
    (work / "S4" / "b.ipynb").write_text(notebook(3))
    for label, cells, when in (("nov28", 1, "2026-11-28T10:00:00+00:00"), ("nov30", 2, "2026-11-30T10:00:00+00:00"),
                               ("dec03", 4, "2026-12-03T10:00:00+00:00")):
        (work / "S3").mkdir(exist_ok=True)
        (work / "S3" / "hw.ipynb").write_text(notebook(cells))
        git("add", "-A", cwd=work, when=when)
        git("commit", "-q", "-m", label, cwd=work, when=when)
        commits[label] = git("rev-parse", "HEAD", cwd=work)
    served = root / "served" / "student"
    publish(work, root / "served", "student/s3")  # github.com/student/s3 and .../s3.git both resolve
    (root / "modular").mkdir()
    _modular(root / "modular", commits, submodule=commits["nov28"])
    git("clone", "-q", "--bare", str(root / "modular"), str(served / "modular"), cwd=root)
    (served / "crafted").mkdir()
    (root / "outside").mkdir()
    _crafted(served / "crafted", outside=root / "outside")
    for name in ("modular", "crafted"):
        git("update-server-info", cwd=served / name)
    with serving(root / "served") as base:
        yield base, commits
    assert not any((root / "outside").iterdir())  # what a crafted tree's link points at was never written to


@pytest.fixture()
def github(server, monkeypatch):
    """git's own configuration, from the environment: https://github.com/ means the loopback server."""
    base, commits = server
    github_at(base, monkeypatch)
    return commits


def cells_in(path: Path) -> int:
    return len(json.loads(path.read_text())["cells"])


def test_a_branch_is_fetched_at_its_last_commit_before_the_deadline(github, tmp_path):
    got = fetch(parse_link("https://github.com/student/s3/blob/main/S3/hw.ipynb"), tmp_path / "a",
                deadline="2026-12-01T00:00:00+00:00")
    assert (got.commit, got.commit_date, got.notebook_path) == (github["nov30"], "2026-11-30T10:00:00+00:00",
                                                                "S3/hw.ipynb")
    assert cells_in(got.path) == 2
    latest = fetch(parse_link("https://github.com/student/s3/blob/main/S3/hw.ipynb"), tmp_path / "b")
    assert latest.commit == github["dec03"] and cells_in(latest.path) == 4


def test_a_linked_commit_is_fetched_as_it_is_whatever_the_deadline(github, tmp_path):
    link = parse_link(f"https://github.com/student/s3/blob/{github['nov28'][:10]}/S3/hw.ipynb")
    got = fetch(link, tmp_path / "a", deadline="2026-12-01T00:00:00+00:00")
    assert got.commit == github["nov28"] and cells_in(got.path) == 1


def test_several_notebooks_are_listed_unless_the_rubric_names_one(github, tmp_path):
    link = parse_link("https://github.com/student/s3/tree/main/S4")
    with pytest.raises(LinkError, match=r"2 notebooks at commit \w+ \(S4/a.ipynb, S4/b.ipynb\)") as err:
        fetch(link, tmp_path / "a")
    assert "notebook: FOLDER/*.ipynb" in str(err.value)
    assert fetch(link, tmp_path / "b", pattern="S4/b*.ipynb").notebook_path == "S4/b.ipynb"
    with pytest.raises(LinkError, match="no commit on the default branch is from before the deadline"):
        fetch(parse_link("https://github.com/student/s3.git"), tmp_path / "c", deadline="2026-01-01T00:00:00")


def on_disk(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes; a link, or anything but a file or a folder, fails the test."""
    found = {}
    for path in sorted(root.rglob("*")):
        assert not path.is_symlink(), path
        if path.is_file():
            found[path.relative_to(root).as_posix()] = path.read_bytes()
        else:
            assert path.is_dir(), path
    return found


def test_a_modular_repository_is_handed_in_at_the_commit_before_the_deadline(github, tmp_path):
    got = fetch(parse_link("https://github.com/student/modular/tree/main/hw"), tmp_path / "a",
                deadline="2026-12-01T00:00:00+00:00")
    assert got.commit == github["modular-nov29"]
    assert (got.root, got.path, got.notebook_path) == (tmp_path / "a" / "tree", got.root / "hw" / "notebook.ipynb",
                                                       "hw/notebook.ipynb")
    written = on_disk(got.root)
    # the notebook first, then the .py files, then the rest: exactly what was written, with the hashes of its bytes
    assert [f.path for f in got.handin.files] == ["hw/notebook.ipynb", "hw/model.py", "hw/utils.py", "README.md"]
    assert {f.path: (f.size, f.sha256) for f in got.handin.files} == \
        {path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in written.items()}
    assert written["hw/model.py"] == b"class Net:\n    width = 8\n"  # the commit before the deadline's model.py
    assert dict(got.handin.left_out) == {
        "hw/mnist.npz": DATA_REASON,
        "hw/model.pt": CHECKPOINT_REASON,
        "hw/big.bin": f"{BIG:,} bytes, over the 8 MiB a file of the hand-in may have",
        "hw/latest.py": LINK_REASON,
        "hw/vendor": "a submodule (another repository, not its files): put its files in this repository",
        "notes/a/b/c/d/e/f/g": "a folder deeper than 8 levels",
    }  # .github/ is a tool folder: skipped, not listed
    assert got.handin.modules == ("hw", "model", "utils") and got.handin.notebook_dir == "hw"
    assert collect(got.root, got.path).files == got.handin.files  # the same rules as a folder handed in
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["repo", "tree"]

    latest = fetch(parse_link("https://github.com/student/modular/blob/main/hw/notebook.ipynb"), tmp_path / "b")
    assert latest.commit == github["modular-dec02"]
    assert (latest.root / "hw" / "model.py").read_text() == "class Net:\n    width = 16\n"
    # only model.py changed: a different submission for the cache and for look-alikes
    assert latest.handin.files[0] == got.handin.files[0] and latest.handin.digest != got.handin.digest


def test_a_repository_past_the_file_limit_keeps_its_code(github, tmp_path, monkeypatch):
    monkeypatch.setattr(handin, "MAX_FILES", 3)
    got = fetch(parse_link("https://github.com/student/modular/tree/main/hw"), tmp_path / "a")
    assert [f.path for f in got.handin.files] == ["hw/notebook.ipynb", "hw/model.py", "hw/utils.py"]
    assert dict(got.handin.left_out)["README.md"] == "past the 3 files a hand-in may stage"
    assert "README.md" not in on_disk(got.root)


def test_a_link_to_a_symbolic_link_says_to_link_the_notebook(github, tmp_path):
    with pytest.raises(LinkError, match=r"hw/latest.py at commit \w+ is a symbolic link; link to the notebook file"):
        fetch(parse_link("https://github.com/student/modular/blob/main/hw/latest.py"), tmp_path / "a")


def test_a_crafted_tree_never_writes_outside_its_folder(github, tmp_path):
    scratch = tmp_path / "deep" / "scratch"
    got = fetch(parse_link("https://github.com/student/crafted"), scratch)
    assert [f.path for f in got.handin.files] == ["nb.ipynb", "dup.py", "sub/model.py"]
    code = b"print('outside the scratch folder')\n"
    assert on_disk(got.root) == {"nb.ipynb": notebook(3).encode(), "dup.py": code, "sub/model.py": code}
    assert dict(got.handin.left_out) == {
        "../../evil.py": UNSAFE_PATH_REASON, "../escaped.py": UNSAFE_PATH_REASON, "/abs.py": UNSAFE_PATH_REASON,
        "dup.py": "listed twice in one git tree (a crafted tree object): the first one is kept",
        "caf\\xe9.py": "a name that is not UTF-8 text: rename it", "sub": LINK_REASON,
    }  # .git/: a hidden folder, never written
    json.dumps(got.handin.left_out, ensure_ascii=False).encode("utf-8")  # every name is text the facts can hold
    assert sorted(p.name for p in scratch.iterdir()) == ["repo", "tree"]
    assert [p.name for p in tmp_path.iterdir()] == ["deep"]
    assert [p.name for p in scratch.parent.iterdir()] == ["scratch"]
    assert not any(p.name in ("evil.py", "escaped.py", "abs.py", "post-checkout") for p in tmp_path.rglob("*"))
    assert not Path("/abs.py").exists()
    with pytest.raises(LinkError, match=r"the notebook '\.\./hw.ipynb' at commit \w+ is not a plain relative path .*"
                                        r"move it to a plain path in the repository"):
        fetch(parse_link("https://github.com/student/crafted/tree/only-unsafe"), tmp_path / "b")
    assert not (tmp_path / "b" / "tree").exists() and not (tmp_path / "hw.ipynb").exists()
    with pytest.raises(LinkError, match=r"the notebook n{300}\.ipynb at commit \w+ could not be written: cannot be "
                                        r"written \(File name too long\); rename it .* or upload the \.ipynb file"):
        fetch(parse_link("https://github.com/student/crafted/tree/long-name"), tmp_path / "c")


@pytest.mark.parametrize("url, message", [
    ("https://colab.research.google.com/drive/1AbC", "Download .ipynb"),
    ("https://drive.google.com/file/d/1AbC/view", "Colab / Google Drive link"),
    ("https://gitlab.com/a/b", "not a GitHub link"),
    ("https://github.com/student", "names no repository"),
])
def test_links_we_cannot_fetch_say_what_to_upload(url, message):
    with pytest.raises(LinkError, match=message):
        parse_link(url)


def test_a_missing_repository_or_branch_says_so(github, tmp_path):
    with pytest.raises(LinkError, match="could not be cloned .* is it public"):
        fetch(parse_link("https://github.com/student/nothing"), tmp_path / "a")
    with pytest.raises(LinkError, match="no branch, tag or commit 'nope/S3'"):
        fetch(parse_link("https://github.com/student/s3/tree/nope/S3"), tmp_path / "b")


def test_links_in_shortcuts_text_and_moodle_online_text():
    assert find_link("[InternetShortcut]\r\nURL=https://github.com/a/b\r\n") == "https://github.com/a/b"
    assert find_link('<p>My work: <a href="https://github.com/a/b/tree/main/S3">here</a></p>') == \
        "https://github.com/a/b/tree/main/S3"
    assert find_link("see https://github.com/a/b.") == "https://github.com/a/b"


def test_a_class_of_links_graded_at_the_deadline(github, tmp_path):
    folder = tmp_path / "class"
    (folder / "Ada Good_17_assignsubmission_onlinetext_").mkdir(parents=True)
    (folder / "Ada Good_17_assignsubmission_onlinetext_" / "onlinetext.html").write_text(
        '<p><a href="https://github.com/student/s3/tree/main/S3">https://github.com/student/s3/tree/main/S3</a></p>')
    (folder / "Bo Lee_18_assignsubmission_file_").mkdir()
    (folder / "Bo Lee_18_assignsubmission_file_" / "link.url").write_text(
        "[InternetShortcut]\nURL=https://colab.research.google.com/drive/1AbC\n")
    (folder / "Cy Dee_19_assignsubmission_file_").mkdir()
    (folder / "Cy Dee_19_assignsubmission_file_" / "repo.txt").write_text("https://github.com/student/s3\n")
    rubric = tmp_path / "r.yaml"
    rubric.write_text(RUBRIC.format(extra=""))
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", str(rubric), "--out", str(out), "--deadline", "2026-12-01T00:00+00:00"]) \
        in (0, 1)
    facts = json.loads((out / "17" / "facts.json").read_text())
    assert facts["submission"]["commit"] == github["nov30"] and facts["notebook"]["code_cells"] == 2
    assert facts["submission"]["commit_date"] == "2026-11-30T10:00:00+00:00"
    assert facts["submission"]["notebook_path"] == "S3/hw.ipynb"
    assert "at commit " + github["nov30"][:12] in (out / "17" / "report.md").read_text()
    colab = json.loads((out / "18" / "facts.json").read_text())["verdict"]
    assert colab["kind"] == "invalid_notebook" and "Download .ipynb" in colab["message"]
    several = json.loads((out / "19" / "facts.json").read_text())["verdict"]["message"]
    assert "S3/hw.ipynb, S4/a.ipynb, S4/b.ipynb" in several  # three notebooks in the repository: which one?
    named = tmp_path / "named.yaml"
    named.write_text(RUBRIC.format(extra="notebook: S3/*.ipynb\n"))
    assert main([str(folder), "--rubric", str(named), "--out", str(tmp_path / "o2"),
                 "--deadline", "2026-12-01T00:00+00:00"]) in (0, 1)
    with open(tmp_path / "o2" / "gradebook.csv", newline="", encoding="utf-8") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert rows["19"]["verdict"] != "invalid_notebook" and rows["19"]["score"] == "0"  # 2 cells: fetched, graded


def test_a_deadline_that_is_no_date_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "smith_1_1_a.ipynb").write_text(notebook(3))
    rubric = tmp_path / "r.yaml"
    rubric.write_text(RUBRIC.format(extra=""))
    assert main([str(tmp_path / "c"), "--rubric", str(rubric), "--out", str(tmp_path / "o"),
                 "--deadline", "friday"]) == 2
    assert "'friday' is not a date and time" in capsys.readouterr().err
