"""The Gradescope autograder: the zip `grade gradescope build` writes, and its real run_autograder run on a
temporary /autograder layout, giving a results.json valid against Gradescope's spec."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from grader.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "submissions"
ADA = EXAMPLES / "Ada Good_1001_assignsubmission_file_"

VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
# Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/#output-format),
# closed to unknown keys so that a misspelt one fails here rather than being ignored by Gradescope.
RESULTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_name_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "name_format": {"type": "string"}, "number": {"type": "string"}, "output": {"type": "string"},
                "output_format": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": VISIBILITY, "extra_data": {"type": "object"}}}},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {"type": ["number", "string"]},
                           "order": {"enum": ["asc", "desc"]}}}},
    },
}

EVALUATE_RUBRIC = """\
id: s3-gradescope
title: S3 on Gradescope
mode: evaluate
leaderboard: true
late: {penalty: 10%}
items:
  - id: params
    title: Under 20,000 parameters
    fact: model.params.trainable
    lt: 20000
    points: 30
  - id: accuracy
    title: At least 99.4%
    fact: eval.accuracy
    ge: 99.4
    points: 40
    visibility: after_due_date
"""


def autograder_root(tmp_path: Path, rubric_text: str, *extra: str) -> Path:
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(rubric_text)
    archive = tmp_path / "autograder.zip"
    assert main(["gradescope", "build", "--rubric", str(rubric), "-o", str(archive), *extra]) == 0
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():  # as Gradescope unpacks it, keeping the executable bits
            target = root / "source" / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            target.chmod((info.external_attr >> 16) & 0o777 or 0o644)
    return root


def run_autograder(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), GRADER_PYTHON=sys.executable,
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_zip_has_what_gradescope_runs(tmp_path):
    root = autograder_root(tmp_path, EVALUATE_RUBRIC, "--visibility", "after_due_date")
    source = root / "source"
    for script in ("setup.sh", "run_autograder"):
        assert (source / script).stat().st_mode & stat.S_IXUSR
    assert "bubblewrap" in (source / "setup.sh").read_text()
    assert "pip install /autograder/source/package" in (source / "setup.sh").read_text()
    assert "grader env build /autograder/source/rubric.yaml" in (source / "setup.sh").read_text()
    assert (source / "package" / "pyproject.toml").is_file() and (source / "package" / "grader" / "api.py").is_file()
    assert json.loads((source / "config.json").read_text()) == {"visibility": "after_due_date"}


def test_run_autograder_grades_a_late_submission_with_leaderboard(tmp_path, real_mnist_dir, bwrap, monkeypatch):
    monkeypatch.setenv("GRADER_DATA", str(real_mnist_dir))
    root = autograder_root(tmp_path, EVALUATE_RUBRIC)
    shutil.copy(ADA / "notebook.ipynb", root / "submission" / "notebook.ipynb")
    shutil.copy(ADA / "model.pt2", root / "submission" / "model.pt2")
    (root / "submission_metadata.json").write_text(json.dumps(
        {"created_at": "2026-12-02T10:00:00.000000-08:00",
         "assignment": {"due_date": "2026-12-01T23:59:00.000000-08:00"}}))
    done = run_autograder(root)
    assert done.returncode == 0, done.stderr
    doc = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(doc, RESULTS_SCHEMA)
    assert doc["visibility"] == "visible"
    names = {t["name"]: t for t in doc["tests"]}
    assert names["Under 20,000 parameters (params)"]["output"].startswith("model.params.trainable = 10,418")
    assert names["At least 99.4% (accuracy)"]["visibility"] == "after_due_date"
    assert names["Late submission"]["score"] == -7  # 10% of 70
    assert doc["score"] == sum(t["score"] for t in doc["tests"])
    board = {e["name"]: e for e in doc["leaderboard"]}
    assert board["Parameters"] == {"name": "Parameters", "value": 10418, "order": "asc"}
    assert board["Accuracy (%)"]["order"] == "desc" and board["Accuracy (%)"]["value"] >= 99.4


@pytest.mark.parametrize("files, message", [
    ([], "No notebook found in your submission"),
    (["a.ipynb", "S4/b.ipynb"], "Your submission has 2 notebooks (S4/b.ipynb, a.ipynb) and nothing says which one "
                                 "to grade: upload only the notebook to grade."),
])
def test_a_submission_without_one_notebook_gets_results_that_say_so(tmp_path, files, message):
    root = autograder_root(tmp_path, EVALUATE_RUBRIC.replace("mode: evaluate", "mode: static")
                           .replace("model.params.trainable", "notebook.code_cells").replace("eval.accuracy",
                                                                                                "notebook.code_cells"))
    for name in files:
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ADA / "notebook.ipynb", root / "submission" / name)
    done = run_autograder(root)
    assert done.returncode == 0, done.stderr
    doc = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(doc, RESULTS_SCHEMA)
    assert doc["output"].startswith(message) and doc["score"] == 0


def test_a_bad_visibility_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["gradescope", "build", "--rubric", "mnist-s3", "-o", str(tmp_path / "a.zip"), "--visibility", "later"])
    assert exit_.value.code == 2 and "invalid choice: 'later'" in capsys.readouterr().err


def test_the_rubrics_notebook_glob_picks_one_of_several(tmp_path):
    rubric = (EVALUATE_RUBRIC.replace("mode: evaluate", "mode: static").replace("model.params.trainable",
              "notebook.code_cells").replace("eval.accuracy", "notebook.code_cells") + "notebook: 'S4/*.ipynb'\n")
    root = autograder_root(tmp_path, rubric)
    for name in ("a.ipynb", "S4/b.ipynb"):
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ADA / "notebook.ipynb", root / "submission" / name)
    done = run_autograder(root)
    assert done.returncode == 0, done.stderr
    doc = json.loads((root / "results" / "results.json").read_text())
    assert "notebooks" not in doc.get("output", "") and doc["score"] > 0
