"""Look-alike submissions: flagged when code cells match once comments, layout and renamed variables are set
aside; shown to the instructor in the gradebook's similar_to column and similarity.html, never to students; never a
change of score."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

from grader.cli.main import main
from grader.handin import collect
from grader.similarity import THRESHOLD, Code, LookAlike, _bound_names, code_of, look_alikes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "submissions"
NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"
MODULAR = Path(__file__).parent / "fixtures" / "look_alike_modules"


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
    codes["copy"] = Code("\n".join(c["source"] for c in copy["cells"] if c["cell_type"] == "code"))
    assert codes["copy"].notebook != codes["1002"].notebook and codes["1002"].modules == ""
    found = look_alikes(codes)
    assert [(p.other, p.similarity) for p in found["copy"]] == [("1002", 1.0)]
    assert [p.other for p in found["1002"]] == ["copy"]
    assert found["1003"] == []  # same course template, another network: below the threshold
    assert look_alikes({"1002": codes["1002"], "1003": codes["1003"]}, threshold=0.0)["1002"][0].similarity < THRESHOLD


def test_hand_ins_whose_notebooks_differ_but_whose_modules_are_copies_are_found():
    """ada and bo wrote their own notebooks; bo's model.py and utils.py are ada's with the names they bind renamed
    and the comments rewritten. cy wrote all of hers."""
    handins = {who: collect(MODULAR / who, MODULAR / who / "notebook.ipynb") for who in ("ada", "bo", "cy")}
    assert [f.path for f in handins["bo"].files] == ["notebook.ipynb", "model.py", "utils.py"]
    codes = {who: code_of(h) for who, h in handins.items()}
    assert codes["ada"].modules.startswith('"""The network for session 6') and "def train(" in codes["ada"].modules
    found = look_alikes(codes)
    assert found == {"ada": [LookAlike("bo", 1.0, modules=True)], "bo": [LookAlike("ada", 1.0, modules=True)],
                     "cy": []}
    # their notebooks alone are not alike, nor, diluted by them, is all their code
    notebooks = look_alikes({who: code_of(MODULAR / who / "notebook.ipynb") for who in handins}, threshold=0.0)
    assert notebooks["ada"][0] == LookAlike("bo", notebooks["ada"][0].similarity) and \
        notebooks["ada"][0].similarity < 0.2
    whole = look_alikes({who: Code(c.notebook + "\n\n" + c.modules) for who, c in codes.items()}, threshold=0.0)
    assert whole["ada"][0].other == "bo" and whole["ada"][0].similarity < THRESHOLD


def test_a_module_that_is_not_python_is_not_compared_and_a_future_import_is(tmp_path):
    for name in ("ada", "bo"):
        shutil.copytree(MODULAR / name, tmp_path / name)
    (tmp_path / "ada" / "broken.py").write_text("print 'python 2'\n")
    (tmp_path / "ada" / "latin.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    bo_model = tmp_path / "bo" / "model.py"
    bo_model.write_text("from __future__ import annotations\n" + bo_model.read_text())
    codes = {who: code_of(collect(tmp_path / who, tmp_path / who / "notebook.ipynb")) for who in ("ada", "bo")}
    assert "python 2" not in codes["ada"].modules and "caf" not in codes["ada"].modules
    assert "pass  # from __future__ import annotations" in codes["bo"].modules  # only valid first in a file
    assert look_alikes(codes)["bo"] == [LookAlike("ada", 1.0, modules=True)]


def test_unreadable_and_tiny_submissions_are_never_alike(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert code_of(broken) is None and code_of(tmp_path / "missing.ipynb") is None
    assert look_alikes({"a": None, "b": "x = 1\n", "c": "x = 1\n"}) == {"a": [], "b": [], "c": []}


def test_the_class_gets_a_similar_to_column_and_a_look_alike_page_and_the_same_scores(tmp_path):
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
    page = (out / "similarity.html").read_text()  # the instructor's: the pair, its score, the code side by side
    assert page.count('class="pair"') == 1 and "1002" in page and "1099" in page and "100%" in page
    assert "renamed_0" in page and 'class="same"' in page
    for student in ("1099", "1002", "1003"):  # the students' reports say nothing of it
        report = (out / student / "report.md").read_text()
        others = {"1002", "1099", "1003"} - {student}
        assert "look alike" not in report and not others & set(re.findall(r"\d{4}", report))
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(folder / "copycat_1099_1_nb.ipynb", alone / "copycat_1099_1_nb.ipynb")
    assert main([str(alone), "--rubric", "mnist-s3", "--mode", "static", "--out", str(tmp_path / "o2")]) in (0, 1)
    with open(tmp_path / "o2" / "gradebook.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.DictReader(fh))["score"] == rows["1099"]["score"]  # flagged or not: the same score
