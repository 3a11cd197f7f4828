"""Scoring answers: statuses, points, tolerance, the Gradescope results file, facts, and `grade quiz check`."""

import json
from pathlib import Path

import nbformat
import pytest

from grader import yamlio
from grader.cli.main import main
from grader.facts import Facts, QuizFacts
from grader.quiz import check_answers, draw_quiz, load_bank
from grader.quiz.bank import bank_from_yaml
from grader.quiz.export.json import document

BANK = Path(__file__).resolve().parents[1] / "quizzes" / "cnn-basics.yaml"

SMALL = """\
quiz: small
title: Small
points: 1
questions:
  - id: size
    kind: shape
    stack: "400x400x3 > c3:32 > mp2"
    layer: 2
    points: 3
    text: "Size after the max-pool?"
  - id: rf
    kind: rf
    stack: "400x400x3 > c3:32 > mp2"
    text: "RF at the end?"
  - id: macs-per-pixel
    kind: formula
    compute: expr
    expr: "row.weights / 1000"
    stack: "8x8x3 > c3:10"
    layer: 1
    tolerance: 0.01
    text: "Weights in thousands?"
  - id: tf
    kind: choice
    text: "A max-pool has parameters."
    answer: false
    explanation: "Nothing to learn."
  - id: mc
    kind: choice
    shuffle: false
    text: "Pick the transition block."
    options: ["max-pool then 1x1", "softmax then 1x1"]
    answer: a
    explanation: "Halve, then merge channels."
"""


@pytest.fixture()
def small():
    return bank_from_yaml(yamlio.loads(SMALL, "small.yaml"))


def test_all_forms_of_right_answers_score_full_marks(small):
    answers = {"size": "(199, 199, 32)", "rf": "4", "macs-per-pixel": "0.275", "tf": "False", "mc": "A"}
    result = check_answers(small, answers, "s1")
    assert [q.status for q in result.questions] == ["correct"] * 5
    assert result.score == result.max_score == 7 and result.passed_all


def test_statuses_and_points(small):
    result = check_answers(small, {"size": "199x199", "rf": "four", "macs-per-pixel": 0.3, "tf": True,
                                   "extra": 1}, "s1")
    by_id = {q.id: q for q in result.questions}
    assert by_id["size"].status == "incomplete" and "HxWxC" in by_id["size"].feedback
    assert by_id["size"].max_score == 3
    assert by_id["rf"].status == "unreadable"
    assert by_id["macs-per-pixel"].status == "wrong"  # 0.3 is outside 0.275 +- 0.01
    assert by_id["tf"].status == "wrong" and "Nothing to learn." in by_id["tf"].feedback
    assert by_id["mc"].status == "missing" and by_id["mc"].answer is None
    assert result.score == 0 and result.max_score == 7
    assert result.unknown_answers == ["extra"]


def test_wrong_answer_feedback_teaches_with_the_worked_recurrence(small):
    q = check_answers(small, {"rf": "6"}, "s").questions[1]
    assert q.status == "wrong" and q.diagnosis == "rf_doubled_at_maxpool"
    assert "r: 1 -> 3 (conv3x3 32: +2*1) -> 4 (maxpool 2x2: +1*1)" in q.feedback
    assert "the answer is 4x4" in q.feedback


def test_the_key_fed_back_as_answers_scores_full_marks_for_every_shipped_question():
    bank = load_bank(BANK)
    quiz = draw_quiz(bank, "roundtrip", len(bank.questions))
    key = {q["id"]: q["answer"] for q in document(quiz, with_key=True)["questions"]}
    result = check_answers(bank, json.loads(json.dumps(key)), "roundtrip", len(bank.questions))
    assert [q.id for q in result.questions if q.status != "correct"] == []


def test_quiz_facts_and_gradescope_results(small):
    from grader.quiz import gradescope_results

    result = check_answers(small, {"size": "199x199x32", "rf": "6"}, "s1")
    facts = result.to_facts()
    assert isinstance(facts, QuizFacts) and facts.score == 3 and facts.max_score == 7
    assert Facts(quiz=facts).get("quiz.questions")[1]["diagnosis"] == "rf_doubled_at_maxpool"
    out = gradescope_results(result, execution_time=0.5)
    assert set(out) == {"score", "execution_time", "output", "tests", "stdout_visibility"}
    assert out["score"] == 3 and out["execution_time"] == 0.5
    first, second = out["tests"][:2]
    assert first == {"name": "size (shape)", "score": 3, "max_score": 3, "status": "passed",
                     "output": first["output"], "visibility": "visible"}
    assert second["status"] == "failed" and second["score"] == 0 and "doubling" in second["output"]


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_check_json_and_results_file(tmp_path, capsys):
    bank = tmp_path / "small.yaml"
    bank.write_text(SMALL)
    answers = tmp_path / "answers.yaml"
    answers.write_text("size: 199 x 199 x 32\nrf: 6\ntf: no\nmc: max-pool then 1x1\nmacs-per-pixel: 0.27\n")
    results = tmp_path / "results.json"
    code, out, _ = _cli(capsys, "quiz", "check", str(bank), str(answers), "--student", "s9", "--json",
                        "--results", str(results))
    assert code == 1  # one answer is wrong
    data = json.loads(out)
    assert data["score"] == 6 and data["max_score"] == 7
    assert {"id", "score", "status", "feedback", "diagnosis"} <= set(data["questions"][0])
    gradescope = json.loads(results.read_text())
    assert [t["status"] for t in gradescope["tests"]] == ["passed", "failed", "passed", "passed", "passed"]


def test_cli_check_reads_a_notebook_and_exits_0_on_full_marks(tmp_path, capsys):
    bank = tmp_path / "small.yaml"
    bank.write_text(SMALL)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"),
                nbformat.v4.new_markdown_cell("size: 199x199x32\nrf: 4x4\nmacs-per-pixel: 0.27\ntf: false\nmc: a",
                                              metadata={"tags": ["quiz"]})]
    path = tmp_path / "student.ipynb"
    path.write_text(nbformat.writes(nb))
    code, out, _ = _cli(capsys, "quiz", "check", str(bank), str(path), "--student", "s9")
    assert code == 0 and "7 / 7" in out


def test_cli_errors_exit_2_with_what_where_and_fix(tmp_path, capsys):
    bank = tmp_path / "small.yaml"
    bank.write_text(SMALL)
    code, _, err = _cli(capsys, "quiz", "check", str(bank), str(tmp_path / "missing.yaml"), "--student", "s")
    assert code == 2 and "missing.yaml: file not found" in err
    (tmp_path / "answers.txt").write_text("rf: 4")
    code, _, err = _cli(capsys, "quiz", "check", str(bank), str(tmp_path / "answers.txt"), "--student", "s")
    assert code == 2 and "--answers-format" in err
