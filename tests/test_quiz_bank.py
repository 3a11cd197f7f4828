"""Quiz banks: the shipped bank's size and content, and schema errors that name the file, line and allowed values."""

from pathlib import Path

import pytest

from grader import yamlio
from grader.errors import GraderError
from grader.quiz import load_bank
from grader.quiz.bank import bank_from_yaml

BANK = Path(__file__).resolve().parents[1] / "quizzes" / "cnn-basics.yaml"

HEAD = "quiz: t\ntitle: T\nquestions:\n"


def load(text: str):
    return bank_from_yaml(yamlio.loads(text, "bank.yaml"))


def error(text: str) -> GraderError:
    with pytest.raises(GraderError) as err:
        load(text)
    return err.value


def test_shipped_bank_has_forty_questions_half_of_them_computed():
    bank = load_bank(BANK)
    computed = [q for q in bank.questions if q.kind != "choice"]
    assert len(bank.questions) >= 40
    assert len(computed) * 2 >= len(bank.questions)
    assert {q.kind for q in bank.questions} == {"shape", "rf", "params", "formula", "choice"}
    assert {q.compute for q in computed if q.kind == "formula"} == {"jump", "repeats_to_rf", "repeats_to_size", "expr"}


def test_shipped_bank_covers_the_course_material():
    text = BANK.read_text()
    for topic in ("400x400x3", "11x11", "3x3x3", "(3x3x{{ cin }})x{{ cout }}", "fc:10", "gap > c1:10",
                  "2x2 max-pooling", "1x1 convolution", "sigmoid", "batch norm", "dropout"):
        assert topic in text, topic


def test_unknown_kind_names_the_line_and_the_kinds():
    err = error(HEAD + "  - id: a\n    kind: shapes\n    text: x\n")
    assert err.where == "bank.yaml:4"
    assert "unknown question kind 'shapes'" in err.what
    assert err.fix == "kind is one of: shape, rf, params, formula, choice"


def test_unknown_key_lists_the_keys_of_that_kind():
    err = error(HEAD + "  - id: a\n    kind: rf\n    text: x\n    stack: '28x28x1 > c3:4'\n    colour: red\n")
    assert err.where == "bank.yaml:8"
    assert err.what == "questions[0]: unknown key 'colour'"
    assert "layer" in err.fix and "stack" in err.fix and "options" not in err.fix


def test_missing_key_and_bad_literal():
    err = error(HEAD + "  - id: a\n    kind: shape\n    text: x\n    layer: 1\n")
    assert err.what == "questions[0]: missing key 'stack'" and err.where == "bank.yaml:4"
    err = error(HEAD + "  - id: a\n    kind: shape\n    text: x\n    layer: 1\n    stack: s\n    ask: hwcd\n")
    assert err.where == "bank.yaml:9" and "'hwcd' is not allowed" in err.what
    assert err.fix == "use one of: 'hwc', 'hw' or 'c'"


def test_bad_param_range_is_explained():
    err = error(HEAD + "  - id: a\n    kind: rf\n    text: x\n    stack: s\n    params: {n: {range: [9, 3]}}\n")
    assert err.where == "bank.yaml:8" and "params.n: range [9, 3] with step 1 is empty" in err.what
    err = error(HEAD + "  - id: a\n    kind: rf\n    text: x\n    stack: s\n    params: {layer: [1, 2]}\n")
    assert "'layer' cannot be a parameter name" in err.what


def test_choice_answer_must_be_an_option():
    err = error(HEAD + "  - id: a\n    kind: choice\n    text: x\n    explanation: y\n    options: [p, q]\n"
                       "    answer: c\n")
    assert "neither an option's letter (a, b) nor an option's text" in err.what
    err = error(HEAD + "  - id: a\n    kind: choice\n    text: x\n    explanation: y\n    answer: maybe\n")
    assert "true/false question has answer: true or false" in err.what


def test_formula_needs_its_target():
    err = error(HEAD + "  - id: a\n    kind: formula\n    compute: repeats_to_rf\n    text: x\n    stack: s\n")
    assert "needs target" in err.what and err.where == "bank.yaml:4"


def test_duplicate_ids_point_at_both():
    q = "  - id: a\n    kind: choice\n    text: x\n    explanation: y\n    answer: true\n"
    err = error(HEAD + q + q)
    assert err.where == "bank.yaml:9" and "used twice" in err.what and "line 4" in err.fix


def test_template_syntax_error_is_caught_when_the_bank_loads():
    err = error(HEAD + "  - id: a\n    kind: rf\n    text: 'what is {{ n '\n    stack: s\n")
    assert err.where == "bank.yaml:6" and "template syntax error" in err.what


def test_not_a_mapping_and_not_yaml():
    assert "a quiz bank is a mapping" in error("- just\n- a list\n").what
    err = error("quiz: [unclosed\n")
    assert err.where.startswith("bank.yaml:") and "not valid YAML" in err.what


def test_stack_errors_point_into_the_bank():
    b = load(HEAD + "  - id: a\n    kind: rf\n    text: x\n    stack: '28x28x1 > c3:4 > wobble'\n")
    from grader.quiz import draw_quiz
    with pytest.raises(GraderError) as err:
        draw_quiz(b, "s")
    assert err.value.where == "bank.yaml:7" and "unknown layer kind 'wobble'" in err.value.what


def test_the_bank_example_in_the_help_is_a_valid_bank():
    import textwrap

    from grader.quiz import bank as bank_module, draw_quiz

    doc = bank_module.__doc__
    example = load(textwrap.dedent(doc[doc.index("    quiz:"):]))
    (q,) = draw_quiz(example, "s").questions
    n, k = q.params["n"], q.params["k"]
    assert q.key.value == ((n + 2 * (k // 2) - k) // 2 + 1,) * 2


def test_templates_run_sandboxed_with_strict_names():
    from grader.quiz import draw_quiz

    escape = load(HEAD + "  - id: a\n    kind: choice\n    text: \"{{ ''.__class__.__mro__ }}\"\n"
                         "    explanation: y\n    answer: true\n")
    with pytest.raises(GraderError, match="template failed"):
        draw_quiz(escape, "s")
    typo = load(HEAD + "  - id: a\n    kind: choice\n    text: '{{ nn }}'\n    params: {n: [1]}\n"
                       "    explanation: y\n    answer: true\n")
    with pytest.raises(GraderError) as err:
        draw_quiz(typo, "s")
    assert "'nn' is undefined" in err.value.what and err.value.where == "bank.yaml:6"


def test_validate_draws_every_question_for_many_students(capsys):
    import json

    from grader.cli.main import main

    assert main(["quiz", "validate", str(BANK), "--students", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["questions"] == len(summary["variants"]) >= 40
    assert summary["computed"] * 2 >= summary["questions"]
