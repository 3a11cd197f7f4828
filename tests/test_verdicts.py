"""Verdicts that never lie: one pass rule for check, batch and JSON; what could not be measured never passes;
what a depth cannot judge is said to be not judged; a dry run does not blame the student for the loaders it empties
after their one pass, and blames it for everything else."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.cli.main import main
from grader.facts import Facts, GradingFacts, ModelFacts, NotebookFacts, ParamFacts, VerdictFacts
from grader.rubric.load import load_rubric
from grader.rubric.score import score

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "submissions"

MODEL = ("# a small CNN with GAP\nimport torch, torch.nn as nn, torch.nn.functional as F\n"
         "from torchvision import datasets, transforms\n"
         "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
         "        self.c1 = nn.Conv2d(1, 8, 3)\n        self.c2 = nn.Conv2d(8, 10, 3)\n"
         "    def forward(self, x):\n        x = self.c2(F.relu(self.c1(x)))\n"
         "        return F.log_softmax(F.adaptive_avg_pool2d(x, 1).flatten(1), -1)\nmodel = Net()")
LOADER = ("# the test data\n"
          "t = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])\n"
          "test_loader = torch.utils.data.DataLoader(datasets.MNIST('../data', train=False, transform=t), "
          "batch_size=100)")
EMPTY_LOADER_CELLS = [
    "# one batch to look at (a pass left unfinished: the next still yields)\nimages, labels = next(iter(test_loader))",
    "# its shape\nprint(images.shape)",
    "# accuracy the usual way, twice: the dry run's second full pass yields nothing, so seen == 0\n"
    "for epoch in range(2):\n    correct, seen = 0, 0\n    for x, y in test_loader:\n"
    "        correct += (model(x).argmax(1) == y).sum().item(); seen += len(y)\n    print(100. * correct / seen)",
    "# the last batch's predictions\nlast = [model(x).argmax(1) for x, _ in test_loader][-1]",
    "# how many\nprint(last.shape)",  # NameError: follows from the cell above in a dry run
]


def _notebook(tmp_path: Path, name: str, cells: list[str]) -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# a student's notebook")] + [new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def _check_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["check", *map(str, argv), "--json"])
    return code, json.loads(capsys.readouterr().out)


# --- pure: the pass rule and the depth -------------------------------------------------------------------------

def _facts(**sections) -> Facts:
    return Facts(**sections)


def test_a_required_item_a_run_should_have_measured_fails_with_the_verdicts_reason():
    facts = _facts(grading=GradingFacts(mode="execute", dry_run=False),
                   notebook=NotebookFacts(comment_coverage=1.0),
                   verdict=VerdictFacts(kind="no_model", message="no variable `model` holding a torch.nn.Module"))
    sheet = score(facts, load_rubric("mnist-s3"))
    params = next(i for i in sheet.items if i.id == "params")
    assert params.status == "not_measured" and "no model was found" in params.evidence
    assert sheet.passed is False and "params" in sheet.required_not_passed()


def test_a_static_check_judges_nothing_that_needs_a_run_and_never_says_passed():
    facts = _facts(grading=GradingFacts(mode="static"), notebook=NotebookFacts(comment_coverage=1.0))
    sheet = score(facts, load_rubric("mnist-s3"))
    by_id = {i.id: i for i in sheet.items}
    assert by_id["params"].status == "not_judged" and by_id["accuracy"].status == "not_judged"
    assert by_id["params"].evidence == "not judged in a static check: it needs a run"
    assert by_id["comments"].status == "passed"
    assert sheet.passed is False and {"params", "accuracy"} <= set(sheet.not_judged)
    assert "comments" not in sheet.not_judged
    assert sheet.pass_rule.startswith("every required item (params, accuracy, comments") and "passes" in sheet.pass_rule


def test_evaluate_mode_does_not_judge_what_only_a_run_shows():
    facts = _facts(grading=GradingFacts(mode="evaluate"), notebook=NotebookFacts(comment_coverage=1.0),
                   model=ModelFacts(params=ParamFacts(trainable=13000)),
                   verdict=VerdictFacts(kind="ok", message="the exported model was measured", failed_cells=[]))
    sheet = score(facts, load_rubric("mnist-s4"))
    by_id = {i.id: i for i in sheet.items}
    assert by_id["runs"].status == "not_judged" and "evaluate mode" in by_id["runs"].evidence
    assert "ran from the first cell" not in by_id["runs"].feedback
    assert by_id["epochs"].status == "not_judged"
    assert by_id["no-errors"].status == "passed"  # judged from the saved outputs
    # a final grade: what it never judges is left out of the maximum, not lost (a static check keeps it in: "so far")
    assert sheet.left_out == ["epochs", "runs"] and by_id["runs"].max_points == by_id["epochs"].max_points == 0
    assert sheet.max_score == 100 - 5 - 3 and "left out of the maximum score" in by_id["runs"].evidence
    assert "runs" not in [i.id for i in sheet.failed()]
    assert "epochs" in sheet.not_judged and not sheet.passed  # required, and unverified: never claimed as passed
    # an LMS column worth the rubric's 100 points (canvas.csv) gets the score on what was judged, scaled to it
    assert sheet.score_out_of(100) == pytest.approx(sheet.score * 100 / 92)
    static = score(_facts(grading=GradingFacts(mode="static"), notebook=NotebookFacts(comment_coverage=1.0)),
                   load_rubric("mnist-s4"))
    assert static.left_out == [] and static.max_score == 100


def test_the_claims_item_names_the_missing_measurement_when_the_accuracy_was_printed():
    from grader.facts import ClaimsFacts

    facts = _facts(grading=GradingFacts(mode="execute", dry_run=False), claims=ClaimsFacts(accuracy=99.5),
                   verdict=VerdictFacts(kind="ok", message="ran"))
    claims = next(i for i in score(facts, load_rubric("mnist-s3")).items if i.id == "claims")
    assert claims.status == "not_measured"
    assert "printed 99.5%, but the grader has no measurement of its own" in claims.evidence
    assert "saved outputs do not show" not in claims.evidence


# --- through the CLI and the sandbox --------------------------------------------------------------------------

@pytest.mark.usefixtures("bwrap")
def test_check_fails_closed_on_an_unreadable_notebook_and_one_without_code(tmp_path, capsys, real_mnist_dir):
    fake = tmp_path / "fake.ipynb"
    fake.write_text("this is a text file, renamed\n")
    code, out = _check_json(capsys, fake, "--data", real_mnist_dir)
    assert code == 1 and out["facts"]["verdict"]["kind"] == "invalid_notebook" and out["score"]["passed"] is False
    no_code = tmp_path / "no_code.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell("# only words")]), str(no_code))
    code, out = _check_json(capsys, no_code, "--data", real_mnist_dir)
    assert code == 1 and out["facts"]["verdict"]["kind"] == "no_model" and out["score"]["passed"] is False
    assert main(["check", str(no_code), "--data", str(real_mnist_dir)]) == 1
    printed = capsys.readouterr().out
    assert "Not passed" in printed and "Passed: the rubric's pass rule holds" not in printed
    assert "All required items pass" not in printed


@pytest.mark.usefixtures("bwrap")
def test_a_dry_run_does_not_blame_the_student_for_its_empty_loaders(tmp_path, capsys, real_mnist_dir):
    path = _notebook(tmp_path, "loaders", [MODEL, LOADER, *EMPTY_LOADER_CELLS])
    code, out = _check_json(capsys, path, "--dry-run", "--data", real_mnist_dir)
    verdict = out["facts"]["verdict"]
    items = {i["id"]: i for i in out["score"]["items"]}
    assert verdict["kind"] == "ok" and verdict["failed_cells"] == []
    assert ("code cells 5, 6 and 7 failed only because a dry run's data loaders yield nothing after their first "
            "full pass") in verdict["message"]
    assert items["no-errors"]["status"] == "passed"
    assert items["accuracy"]["status"] == "not_judged" and code == 0


@pytest.mark.usefixtures("bwrap")
def test_a_real_failure_still_counts_in_a_dry_run(tmp_path, capsys, real_mnist_dir):
    # PyTorch 0.3's loss.data[0], which no compat profile reads (dataiter.next() is read by torch-1.x)
    old_api = "# the old scalar API\nloss = torch.tensor(0.5)\nprint(loss.data[0])"
    # an error a loader emptied by the dry run also raises, where no loader was emptied: the notebook's own
    own = "# a share of nothing\nprint(1 / len([]))"
    path = _notebook(tmp_path, "old_api", [MODEL, LOADER, old_api, own])
    code, out = _check_json(capsys, path, "--dry-run", "--data", real_mnist_dir)
    verdict = out["facts"]["verdict"]
    assert verdict["kind"] == "ok" and verdict["failed_cells"] == [3, 4]
    assert "write `loss.item()`" in verdict["message"]
    assert {i["id"]: i for i in out["score"]["items"]}["no-errors"]["status"] == "failed"


# --- the bundled class ------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("bwrap")
def test_the_bundled_class_passes_exactly_the_students_who_meet_the_assignment(tmp_path, capsys, real_mnist_dir):
    out = tmp_path / "out"
    assert main(["examples/submissions", "--rubric", "mnist-s3", "--mode", "evaluate", "--out", str(out),
                 "--data", str(real_mnist_dir), "--json"]) == 0
    rows = {r["student"]: r for r in json.loads(capsys.readouterr().out)}
    assert {s for s, r in rows.items() if r["passed"]} == {"1001"}  # under 20k, >= 99.4%, every cell commented
    # full marks: `runs` (5 points), which evaluate mode cannot judge, is left out of the maximum, not lost
    assert rows["1001"]["score"] == rows["1001"]["max_score"] == 95
    assert all(r["not_judged"] == "runs" and r["runs"] is None for r in rows.values())
    with open(out / "gradebook.csv", newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert {r["student"]: r["passed"] == "TRUE" for r in csv_rows} == {s: r["passed"] for s, r in rows.items()}
    assert all(r["not_judged"] == "runs" and r["runs"] == "" for r in csv_rows)
    facts = json.loads((out / "1001" / "facts.json").read_text())
    assert facts["grading"] == {"mode": "evaluate", "dry_run": False, "isolation": None}  # no notebook ran here
    report = (out / "1001" / "report.md").read_text()
    assert "ran from the first cell to the last" not in report and "not judged in evaluate mode" in report
    assert "95 / 95 (passed)" in report and "left out of the maximum score" in report
    fay = json.loads((out / "1006" / "facts.json").read_text())  # a repository: S3.ipynb imports model.py, utils.py
    assert fay["verdict"]["kind"] == "ok" and fay["model"]["params"]["total"] == 6_544 == fay["claims"]["params"]
    assert [f["path"] for f in fay["submission"]["files"]] == ["S3.ipynb", "model.py", "utils.py"]


def test_check_batch_and_json_agree_on_passed_for_every_bundled_example(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["examples/submissions", "--rubric", "mnist-s3", "--mode", "static", "--out", str(out),
                 "--json"]) == 0
    batch = {r["student"]: r["passed"] for r in json.loads(capsys.readouterr().out)}
    for folder in sorted(EXAMPLES.iterdir()):
        student = folder.name.split("_")[1]
        code, checked = _check_json(capsys, next(folder.glob("*.ipynb")), "--static")
        assert checked["score"]["passed"] is batch[student] is False  # a static check never claims a pass
        main(["check", str(next(folder.glob("*.ipynb"))), "--static"])
        printed = capsys.readouterr().out
        assert "Passed: the rubric's pass rule holds" not in printed and "not judged" in printed


def test_the_receptive_field_names_its_layer_and_agrees_with_the_layer_table():
    from grader.arch.engine import analyze
    from grader.arch.spec import parse_line
    from grader.arch.structure import structure_facts
    from grader.report.summary import build_view

    stack = parse_line("28x28x1 > c3:8 > c3:16 > mp2 > c1:8 > c3:16 > c3:16 > c1:10 > gap")
    model = structure_facts(analyze(stack.input, stack.layers))
    row = next(r for r in model.table if r["index"] == model.rf.layer)
    assert (model.rf.layer, model.rf.final, row["rf"], row["kind"]) == (7, 14, 14, "conv")  # the 1x1 feeding GAP
    assert model.table[-1]["kind"] == "gap" and model.table[-1]["rf"] == 28  # GAP sees the whole map: not rf.final
    sheet = score(Facts(model=model), load_rubric("mnist-s3"))
    card = next(k for k in build_view(Facts(model=model), sheet, student="s").key_facts if k.fact == "model.rf.final")
    assert card.value == f"{model.rf.final} px" and f"at layer {model.rf.layer}" in card.note


@pytest.mark.usefixtures("bwrap")
def test_an_accuracy_printed_while_graded_is_a_claim_and_a_gap_is_flagged(tmp_path, real_mnist_dir):
    from grader.api import grade_submission, options_for
    from grader.report.markdown import render_markdown

    fake = ("# the course's test printout, made up\n"
            "print('Test set: Average loss: 0.0200, Accuracy: 9965/10000 (99.65%)')")
    path = _notebook(tmp_path, "fake_print", [MODEL, fake])  # handed in without outputs
    rubric = load_rubric("mnist-s3")
    result = grade_submission(path, rubric, options_for(rubric, data=str(real_mnist_dir)))
    claims = result.facts.claims
    assert claims.accuracy is None and claims.run_accuracy == 99.65  # nothing saved; printed while graded
    assert result.facts.eval.accuracy < 50 and claims.accuracy_gap == claims.run_accuracy_gap > 0.5
    assert {i.id: i for i in result.sheet.items}["claims"].status == "failed"
    report = render_markdown(result.facts, result.sheet, student="s")
    assert "while graded it printed 99.65%" in report and "more than 0.5 over what was measured" in report


def test_a_static_check_mentions_the_errors_its_saved_outputs_show(capsys):
    old = next((EXAMPLES / "Ed Old_1005_assignsubmission_file_").glob("*.ipynb"))  # crashed in code cell 6
    code, out = _check_json(capsys, old, "--static")
    assert out["facts"]["notebook"]["saved_error_cells"] == [6]
    main(["check", str(old), "--static"])
    assert "saved outputs: an error in code cell 6" in " ".join(capsys.readouterr().out.split())


def test_feedback_names_cells_in_the_singular_and_the_plural():
    for failed, said in (([6], "Code cell 6 raised an error"), ([2, 6, 10], "Code cells 2, 6 and 10 raised an error")):
        facts = _facts(grading=GradingFacts(mode="execute", dry_run=False),
                       verdict=VerdictFacts(kind="ok", message="ran", failed_cells=failed))
        item = next(i for i in score(facts, load_rubric("mnist-s3")).items if i.id == "no-errors")
        assert item.feedback.startswith(said)
