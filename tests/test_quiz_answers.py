"""Reading answers (YAML, JSON, CSV, a notebook cell tagged `quiz`) and the forms an answer may take."""

import json

import nbformat
import pytest

from grader.errors import GraderError
from grader.quiz.answers import choice_letter, fit, format_of, normalize, parse_answers, same_numbers


@pytest.mark.parametrize("raw, numbers", [
    ("22x22", (22, 22)),
    ("22 x 22", (22, 22)),
    ("22X22", (22, 22)),
    ("22×22", (22, 22)),
    ("22", (22,)),
    (22, (22,)),
    ("(22, 22)", (22, 22)),
    ("[22, 22]", (22, 22)),
    ([22, 22], (22, 22)),
    ("195x195x32", (195, 195, 32)),
    ("195 x 195 x 32", (195, 195, 32)),
    ("(195, 195, 32)", (195, 195, 32)),
    ("18,432", (18432,)),
    ("1,180,160", (1180160,)),
    ("18_432", (18432,)),
    ("RF 22x22", (22, 22)),
    ("12 px", (12,)),
    ("7474 params", (7474,)),
    ("97.5", (97.5,)),
    ("5 layers", (5,)),
])
def test_numeric_forms(raw, numbers):
    assert normalize(raw).numbers == tuple(float(n) for n in numbers)


@pytest.mark.parametrize("raw", ["twenty-two", "about 22 maybe", "", None, "b"])
def test_not_numbers(raw):
    assert normalize(raw).numbers is None


def test_fit_reads_a_square_shorthand_and_extra_channels():
    assert fit((22.0,), 2) == (22.0, 22.0)
    assert fit((195.0, 195.0, 32.0), 2) == (195.0, 195.0)
    assert fit((195.0, 195.0, 32.0), 1) == (32.0,)
    assert fit((195.0, 195.0), 3) is None  # HxWxC needs all three


def test_numeric_tolerance():
    assert same_numbers((10.04,), (10.0,), tolerance=0.05)
    assert not same_numbers((10.1,), (10.0,), tolerance=0.05)
    assert not same_numbers((18433.0,), (18432.0,))


def test_true_false_and_choice_forms():
    assert normalize("True").truth is True and normalize("no").truth is False and normalize(True).truth is True
    options = ("max-pool then 1x1", "1x1 then softmax", "2")
    assert choice_letter(normalize("B"), options) == "b"
    assert choice_letter(normalize("(a)"), options) == "a"
    assert choice_letter(normalize("b)"), options) == "b"
    assert choice_letter(normalize("Max-pool  then 1x1"), options) == "a"
    assert choice_letter(normalize("2"), options) == "c"  # an option's text wins over anything else
    assert choice_letter(normalize("d"), options) is None


def test_yaml_json_and_the_answers_wrapper():
    assert parse_answers("q1: 22x22\nq2: 18432\n", "yaml", "a.yaml") == {"q1": "22x22", "q2": 18432}
    assert parse_answers('{"q1": "22x22", "q2": [1, 2]}', "json", "a.json") == {"q1": "22x22", "q2": [1, 2]}
    assert parse_answers('{"student": "s1", "answers": {"q1": 5}}', "json", "a.json") == {"q1": 5}


def test_bad_answer_files_name_the_file_and_line():
    with pytest.raises(GraderError) as err:
        parse_answers('{"q1": 22,\n  oops}', "json", "a.json")
    assert err.value.where == "a.json:2" and "not valid JSON" in err.value.what
    with pytest.raises(GraderError) as err:
        parse_answers("- a\n- b\n", "yaml", "a.yaml")
    assert "mapping of question id to answer" in err.value.what
    with pytest.raises(GraderError, match="unknown answers format"):
        parse_answers("", "txt", "a.txt")


def test_csv_with_and_without_header_and_per_student_rows():
    assert parse_answers('q1,22x22\nq2,"(22, 22)"\n', "csv", "a.csv") == {"q1": "22x22", "q2": "(22, 22)"}
    text = "student,id,answer\ns1,q1,12\ns2,q1,22\n\ns1,q2,b\n"
    assert parse_answers(text, "csv", "a.csv", student="s1") == {"q1": "12", "q2": "b"}
    with pytest.raises(GraderError) as err:
        parse_answers("id,answer\nq1,3\nq2\n", "csv", "a.csv")
    assert err.value.where == "a.csv:3"


def _notebook(*cells) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nbformat.writes(nb)


def test_notebook_cell_tagged_quiz_yaml_lines():
    tagged = nbformat.v4.new_markdown_cell("q1: 22x22\nq2: 18432", metadata={"tags": ["quiz"]})
    other = nbformat.v4.new_code_cell("q1 = 'not this one'")
    assert parse_answers(_notebook(other, tagged), "ipynb", "s.ipynb") == {"q1": "22x22", "q2": 18432}


def test_notebook_cell_tagged_quiz_python_dict():
    code = nbformat.v4.new_code_cell('# my answers\nanswers = {"q1": "(22, 22)", "q2": 7474}\nprint(answers)',
                                     metadata={"tags": ["quiz", "other"]})
    assert parse_answers(_notebook(code), "ipynb", "s.ipynb") == {"q1": "(22, 22)", "q2": 7474}


def test_notebook_without_a_quiz_cell_says_how_to_tag_one():
    with pytest.raises(GraderError) as err:
        parse_answers(_notebook(nbformat.v4.new_code_cell("x = 1")), "ipynb", "s.ipynb")
    assert "no cell is tagged `quiz`" in err.value.what and "tag" in err.value.fix
    with pytest.raises(GraderError, match="not a readable notebook"):
        parse_answers(json.dumps({"cells": "nope"}), "ipynb", "s.ipynb")


def test_format_from_the_file_name():
    assert [format_of(p) for p in ("a.yml", "a.YAML", "b.json", "c.csv", "d.ipynb", "e.txt")] == \
        ["yaml", "yaml", "json", "csv", "ipynb", ""]
