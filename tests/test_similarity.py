"""Look-alike submissions: flagged when code cells match once comments, layout and renamed variables are set
aside; shown in the gradebook's similar_to column and the report; never a change of score."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

from grader.cli.main import main
from grader.similarity import THRESHOLD, _bound_names, code_of, look_alikes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "submissions"
NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"


def notebook(participant: str) -> Path:
    return next(EXAMPLES.glob(f"*_{participant}_assignsubmission_file_")) / "notebook.ipynb"


def disguised(path: Path) -> dict:
    """The notebook with every name it binds renamed, every comment rewritten and the indentation changed."""
    nb = json.loads(path.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    names = sorted(_bound_names(code), key=len, reverse=True)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        text = "".join(cell["source"])
        for i, name in enumerate(names):
            text = re.sub(rf"\b{re.escape(name)}\b", f"renamed_{i}", text)
        text = re.sub(r"#.*", "# written in my own words", text).replace("    ", "  ")
        cell["source"] = text
    return nb


def test_a_disguised_copy_is_found_and_different_networks_are_not():
    codes = {p: code_of(notebook(p)) for p in ("1002", "1003")}
    copy = disguised(notebook("1002"))
    codes["copy"] = "\n".join(c["source"] for c in copy["cells"] if c["cell_type"] == "code")
    assert codes["copy"] != codes["1002"]
    found = look_alikes(codes)
    assert [(p.other, p.similarity) for p in found["copy"]] == [("1002", 1.0)]
    assert [p.other for p in found["1002"]] == ["copy"]
    assert found["1003"] == []  # same course template, another network: below the threshold
    assert look_alikes({"1002": codes["1002"], "1003": codes["1003"]}, threshold=0.0)["1002"][0].similarity < THRESHOLD


def test_unreadable_and_tiny_submissions_are_never_alike(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert code_of(broken) is None and code_of(tmp_path / "missing.ipynb") is None
    assert look_alikes({"a": None, "b": "x = 1\n", "c": "x = 1\n"}) == {"a": [], "b": [], "c": []}


def test_the_class_gets_a_similar_to_column_and_a_report_note_and_the_same_scores(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(notebook("1002"), folder / "bigben_1002_1_nb.ipynb")
    shutil.copy(notebook("1003"), folder / "densecy_1003_1_nb.ipynb")
    (folder / "copycat_1099_1_nb.ipynb").write_text(json.dumps(disguised(notebook("1002"))))
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", "mnist-s3", "--mode", "static", "--out", str(out)]) in (0, 1)
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert rows["1099"]["similar_to"] == "1002 (100%)" and rows["1002"]["similar_to"] == "1099 (100%)"
    assert rows["1003"]["similar_to"] == ""
    assert "look alike" in (out / "1099" / "report.md").read_text()
    assert "look alike" not in (out / "1003" / "report.md").read_text()
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(folder / "copycat_1099_1_nb.ipynb", alone / "copycat_1099_1_nb.ipynb")
    assert main([str(alone), "--rubric", "mnist-s3", "--mode", "static", "--out", str(tmp_path / "o2")]) in (0, 1)
    with open(tmp_path / "o2" / "gradebook.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.DictReader(fh))["score"] == rows["1099"]["score"]  # flagged or not: the same score
