"""Link submissions: a GitHub link handed in instead of a notebook, fetched with the git CLI from a real git
server on 127.0.0.1 (dumb HTTP), with git's url.<base>.insteadOf pointing https://github.com/ at it."""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from grader.cli.main import main
from grader.links import LinkError, fetch, find_link, parse_link

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


def git(*args: str, cwd: Path, when: str = "2026-11-01T12:00:00+00:00") -> str:
    env = dict(os.environ, GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when, GIT_AUTHOR_NAME="s",
               GIT_AUTHOR_EMAIL="s@example.org", GIT_COMMITTER_NAME="s", GIT_COMMITTER_EMAIL="s@example.org")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the server's access log is noise in a failure's output
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """student/s3 on a dumb-HTTP git server on 127.0.0.1: three commits (1, 2 and 4 cells in S3/hw.ipynb)
    on 28 Nov, 30 Nov and 3 Dec, and S4/ with two notebooks. Returns (base URL, {label: commit})."""
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
    served.mkdir(parents=True)
    git("clone", "-q", "--bare", str(work), str(served / "s3.git"), cwd=root)
    git("update-server-info", cwd=served / "s3.git")
    shutil.copytree(served / "s3.git", served / "s3")  # github.com/student/s3 and .../s3.git both resolve
    handler = functools.partial(_Quiet, directory=str(root / "served"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", commits
    httpd.shutdown()


@pytest.fixture()
def github(server, monkeypatch):
    """git's own configuration, from the environment: https://github.com/ means the loopback server."""
    base, commits = server
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{base}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.com/")
    return commits


def cells_in(path: Path) -> int:
    return len(json.loads(path.read_text())["cells"])


def test_a_branch_is_fetched_at_its_last_commit_before_the_deadline(github, tmp_path):
    got = fetch(parse_link("https://github.com/student/s3/blob/main/S3/hw.ipynb"), tmp_path / "a",
                deadline="2026-12-01T00:00:00+00:00")
    assert (got.commit, got.commit_date, got.notebook_path) == (github["nov30"], "2026-11-30T10:00:00+00:00", "S3/hw.ipynb")
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
