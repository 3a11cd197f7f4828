"""Exports: students' copies never carry keys; GIFT and QTI parse back under the formats' rules."""

import html
import io
import itertools
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from grader import yamlio
from grader.cli.main import main
from grader.errors import GraderError
from grader.quiz import draw_quiz, load_bank
from grader.quiz.bank import bank_from_yaml
from grader.quiz.export import export
from grader.quiz.export.gift import size_forms

BANK = Path(__file__).resolve().parents[1] / "quizzes" / "cnn-basics.yaml"
NS = {"q": "http://www.imsglobal.org/xsd/ims_qtiasiv1p2", "m": "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"}

TRICKY = """\
quiz: tricky
title: "Escapes: ~ = # { } \\\\ and more"
questions:
  - id: odd-text
    kind: choice
    shuffle: false
    text: "Which is {right}? a~b = c#d: e\\\\f\\nsecond line"
    options: ["x = {1}", "y ~ 2: #3", "plain"]
    answer: b
    explanation: "Because: ~ and = and # and {braces}."
  - id: decimal
    kind: formula
    compute: expr
    expr: "row.weights / 8"
    stack: "4x4x1 > c3:3"
    layer: 1
    tolerance: 0.5
    text: "Weights / 8?"
"""


@pytest.fixture(scope="module")
def quiz():
    bank = load_bank(BANK)
    return draw_quiz(bank, "export-student", len(bank.questions))


@pytest.fixture(scope="module")
def tricky():
    return draw_quiz(bank_from_yaml(yamlio.loads(TRICKY, "tricky.yaml")), "s")


# ------------------------------------------------------------------ students' copies

def test_json_student_copy_has_no_keys_and_the_keyed_copy_has_them(quiz):
    student = json.loads(export(quiz, "json"))
    assert set(student) == {"quiz", "title", "student", "questions"}
    assert student["quiz"] == "cnn-basics" and student["student"] == "export-student"
    for item in student["questions"]:
        assert {"id", "kind", "text", "points"} <= set(item) and "answer" not in item and "explanation" not in item
    keyed = json.loads(export(quiz, "json", with_key=True))
    assert all("answer" in item for item in keyed["questions"])


def test_markdown_and_html_student_copies_carry_no_answers(quiz):
    for fmt in ("md", "html"):
        text = export(quiz, fmt)
        assert "Answer:" in text and "**Answer:**" not in text and '<div class="key">' not in text
        for q in quiz.questions:
            assert not any(line in text for line in q.key.working[1:]), q.id
            assert not q.explanation or q.explanation not in text, q.id
    keyed = export(quiz, "md", with_key=True)
    assert keyed.count("**Answer:**") == len(quiz.questions)


def test_html_is_self_contained_and_printable(quiz):
    page = export(quiz, "html", with_key=True)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "@media print" in page
    assert not re.search(r"<script|<link|src=|href=|@import|url\(", page)
    assert page.count('<section class="question"') == len(quiz.questions)


def test_html_escapes_question_text(tricky):
    page = export(tricky, "html")
    assert "{right}" in page and "a~b = c#d" in page
    assert "<p>x" not in page and "x = {1}" in page


def test_lms_formats_need_the_key(quiz):
    for fmt in ("gift", "qti"):
        with pytest.raises(GraderError) as err:
            export(quiz, fmt)
        assert "--with-key" in err.value.fix


# ------------------------------------------------------------------ GIFT, parsed back

SPECIAL = set("~=#{}:")


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(character, was escaped); \\n is a newline."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(("\n" if text[i + 1] == "n" else text[i + 1], True))
            i += 2
        else:
            out.append((text[i], False))
            i += 1
    return out


def _plain(tokens) -> str:
    for ch, escaped in tokens:
        assert escaped or ch not in SPECIAL, f"unescaped {ch!r} in {''.join(c for c, _ in tokens)!r}"
    return "".join(ch for ch, _ in tokens)


def _find(tokens, pattern: str, start: int = 0) -> int:
    for i in range(start, len(tokens) - len(pattern) + 1):
        if all(tokens[i + j] == (pattern[j], False) for j in range(len(pattern))):
            return i
    return -1


def parse_gift(text: str) -> list[dict]:
    """The subset of GIFT the exporter writes: ::title::text{answers####feedback}."""
    questions = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("//")]
        if not lines or lines[0].startswith("$CATEGORY:"):
            continue
        assert len(lines) == 1, "a question is one line: newlines in text are written \\n"
        tokens = _tokens(lines[0])
        assert _find(tokens, "::") == 0
        title_end = _find(tokens, "::", 2)
        open_brace = _find(tokens, "{", title_end + 2)
        assert tokens[-1] == ("}", False) and title_end > 0 and open_brace > 0
        body = tokens[open_brace + 1:-1]
        cut = _find(body, "####")
        answers, feedback = (body[:cut], body[cut + 4:]) if cut >= 0 else (body, [])
        question = {"title": _plain(tokens[2:title_end]), "text": _plain(tokens[title_end + 2:open_brace]),
                    "feedback": _plain(feedback)}
        if answers and answers[0] == ("#", False):
            colon = _find(answers, ":")
            question["numeric"] = (float(_plain(answers[1:colon])), float(_plain(answers[colon + 1:])))
        elif "".join(ch for ch, _ in answers) in ("TRUE", "FALSE", "T", "F"):
            question["truth"] = answers[0][0] == "T"
        else:
            marks = [i for i, (ch, escaped) in enumerate(answers) if ch in "=~" and not escaped] + [len(answers)]
            assert marks[0] == 0
            question["options"] = [(answers[a][0] == "=", _plain(answers[a + 1:b]).strip())
                                   for a, b in itertools.pairwise(marks)]
        questions.append(question)
    return questions


def test_gift_parses_back_to_the_drawn_quiz(quiz):
    parsed = parse_gift(export(quiz, "gift", with_key=True))
    assert [p["title"] for p in parsed] == [q.id for q in quiz.questions]
    for p, q in zip(parsed, quiz.questions, strict=True):
        assert p["text"] == q.text
        value = q.key.value
        if isinstance(value, bool):
            assert p["truth"] is value
        elif isinstance(value, str):
            assert [text for _, text in p["options"]] == list(q.options)
            assert [text for right, text in p["options"] if right] == [q.options[ord(value) - 97]]
        elif len(value) == 1:
            assert p["numeric"] == (value[0], q.key.tolerance)
        else:
            assert all(right for right, _ in p["options"])
            assert [text for _, text in p["options"]] == size_forms(value)
            assert "x".join(str(int(v)) for v in value) in size_forms(value)


def test_gift_escapes_every_special_character(tricky):
    parsed = parse_gift(export(tricky, "gift", with_key=True))
    odd, decimal = parsed
    assert odd["text"] == "Which is {right}? a~b = c#d: e\\f\nsecond line"
    assert odd["options"] == [(False, "x = {1}"), (True, "y ~ 2: #3"), (False, "plain")]
    assert odd["feedback"] == "Because: ~ and = and # and {braces}."
    assert decimal["numeric"] == (3 * 3 * 1 * 3 / 8, 0.5)  # 27 weights


# ------------------------------------------------------------------ QTI 1.2, parsed back

def _qti(quiz) -> tuple[ET.Element, ET.Element, zipfile.ZipFile]:
    archive = zipfile.ZipFile(io.BytesIO(export(quiz, "qti", with_key=True)))
    manifest = ET.fromstring(archive.read("imsmanifest.xml"))
    resource = manifest.find("m:resources/m:resource", NS)
    assert resource.get("type") == "imsqti_xmlv1p2"
    href = resource.find("m:file", NS).get("href")
    assert href == resource.get("href") and href in archive.namelist()
    assert sorted(archive.namelist()) == sorted(["imsmanifest.xml", href])
    return manifest, ET.fromstring(archive.read(href)), archive


def _meta(item: ET.Element) -> dict[str, str]:
    fields = item.findall("q:itemmetadata/q:qtimetadata/q:qtimetadatafield", NS)
    return {f.findtext("q:fieldlabel", namespaces=NS): f.findtext("q:fieldentry", namespaces=NS) for f in fields}


def test_qti_structure_and_correct_responses(quiz):
    _, root, _ = _qti(quiz)
    assert root.tag == f"{{{NS['q']}}}questestinterop"
    items = root.findall("q:assessment/q:section/q:item", NS)
    assert [i.get("ident") for i in items] == [q.id for q in quiz.questions]
    for item, q in zip(items, quiz.questions, strict=True):
        meta = _meta(item)
        assert float(meta["points_possible"]) == q.points
        text = item.findtext("q:presentation/q:material/q:mattext", namespaces=NS)
        assert html.unescape(re.sub(r"<[^>]+>", "", text.replace("<br/>", "\n"))) == q.text
        condition = item.find("q:resprocessing/q:respcondition", NS)
        assert condition.find("q:setvar", NS).text == "100"
        assert item.find("q:resprocessing/q:outcomes/q:decvar", NS).get("varname") == "SCORE"
        value = q.key.value
        if isinstance(value, (bool, str)):
            assert meta["question_type"] == ("true_false_question" if isinstance(value, bool)
                                             else "multiple_choice_question")
            labels = item.findall("q:presentation/q:response_lid/q:render_choice/q:response_label", NS)
            idents = [label.get("ident") for label in labels]
            correct = condition.findall("q:conditionvar/q:varequal", NS)
            assert len(correct) == 1 and correct[0].text in idents
            chosen = labels[idents.index(correct[0].text)].findtext("q:material/q:mattext", namespaces=NS)
            assert chosen == (str(value) if isinstance(value, bool) else q.options[ord(value) - 97])
        elif len(value) == 1:
            assert meta["question_type"] == "numerical_question"
            assert item.find("q:presentation/q:response_str/q:render_fib", NS).get("fibtype") == "Decimal"
            exact = condition.find("q:conditionvar/q:or/q:varequal", NS)
            assert float(exact.text) == value[0]
            low = condition.find("q:conditionvar/q:or/q:and/q:vargte", NS)
            high = condition.find("q:conditionvar/q:or/q:and/q:varlte", NS)
            assert float(low.text) <= value[0] <= float(high.text)
        else:
            assert meta["question_type"] == "short_answer_question"
            assert item.find("q:presentation/q:response_str/q:render_fib", NS) is not None
            accepted = [v.text for v in condition.findall("q:conditionvar/q:varequal", NS)]
            assert accepted == size_forms(value)


def test_qti_choice_with_special_characters_round_trips(tricky):
    _, root, _ = _qti(tricky)
    item = root.find("q:assessment/q:section/q:item", NS)
    labels = [label.findtext("q:material/q:mattext", namespaces=NS)
              for label in item.findall("q:presentation/q:response_lid/q:render_choice/q:response_label", NS)]
    assert labels == ["x = {1}", "y ~ 2: #3", "plain"]


def test_qti_zip_is_byte_identical_for_the_same_student(quiz):
    assert export(quiz, "qti", with_key=True) == export(quiz, "qti", with_key=True)


def test_cli_make_writes_files(tmp_path, capsys):
    out = tmp_path / "q.zip"
    assert main(["quiz", "make", str(BANK), "--student", "s1", "--format", "qti", "--with-key", "-o", str(out),
                 "--count", "5"]) == 0
    assert zipfile.is_zipfile(out)
    assert main(["quiz", "make", str(BANK), "--student", "s1", "--format", "gift"]) == 2
    assert "--with-key" in capsys.readouterr().err
    assert main(["quiz", "make", str(BANK), "--student", "s1", "--count", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Convolutions on MNIST") and text.count("### ") == 3


# ------------------------------------------------------------------ headings and several students

def test_html_headings_are_the_question_titles_and_the_id_says_how_to_answer(quiz, tricky):
    page = export(quiz, "html")
    headings = re.findall(r"<h2>(.*?) <span class=\"points\">", page)
    assert headings == [f"{n}. {html.escape(q.title)}" for n, q in enumerate(quiz.questions, 1)]
    first = next(q for q in quiz.questions if q.id == "net400-shape-block1")
    assert first.title == "Output size in the first block"
    assert f"<h2>{quiz.questions.index(first) + 1}. Output size in the first block <span" in page
    assert not any(q.id in h for q in quiz.questions for h in headings)  # no internal id as a heading
    assert page.count('<p class="qid">answer as <code>') == len(quiz.questions)
    assert f"answer as <code>{first.id}: ...</code>" in page
    markdown = export(quiz, "md")
    assert f"### {quiz.questions.index(first) + 1}. Output size in the first block (" in markdown
    # a bank without titles: the heading says what the kind asks for, never the id
    assert [q.title for q in tricky.questions] == ["Multiple choice", "Computed from the layers"]
    assert "<h2>1. Multiple choice <span" in export(tricky, "html")


def test_a_title_is_a_template_over_the_drawn_values():
    bank = bank_from_yaml(yamlio.loads(TRICKY.replace("  - id: decimal\n", "  - id: decimal\n    title: 'Weights of "
                                                      "a {{ n }}-channel layer'\n    params: {n: [4]}\n"), "t.yaml"))
    assert draw_quiz(bank, "s").questions[1].title == "Weights of a 4-channel layer"
    with pytest.raises(GraderError) as err:
        bank_from_yaml(yamlio.loads(TRICKY.replace("  - id: decimal\n", "  - id: decimal\n    title: '{{ n'\n"),
                                    "t.yaml"))
    assert err.value.where == "t.yaml:12" and err.value.what.startswith("template syntax error")  # the title's line
    assert "check the {{ ... }}" in err.value.fix


def test_make_for_several_students_writes_one_file_each(tmp_path, capsys):
    pattern = str(tmp_path / "quiz-{student}.html")
    assert main(["quiz", "make", str(BANK), "--student", "s1", "--student", "s2", "--format", "html", "-o", pattern,
                 "--count", "3"]) == 0
    one, two = (tmp_path / "quiz-s1.html").read_text(), (tmp_path / "quiz-s2.html").read_text()
    assert "student <code>s1</code>" in one and "student <code>s2</code>" in two
    assert one == export(draw_quiz(load_bank(BANK), "s1", 3), "html")  # each as if made alone
    assert main(["quiz", "make", str(BANK), "--student", "s1", "--student", "s2", "-o", str(tmp_path / "q.md")]) == 2
    err = capsys.readouterr().err
    assert f"error: -o: 2 students (s1, s2) need a file each, and -o {tmp_path / 'q.md'} names one file" in err
    assert "-> put {student} in the file name: -o quiz-{student}.md" in err
    assert main(["quiz", "make", str(BANK), "--student", "../s1", "--student", "s2", "-o", pattern]) == 2
    err = capsys.readouterr().err
    assert ("error: --student: the student id '../s1' cannot be part of a file name\n"
            "  -> give ids without / or \\") in err


def test_check_for_several_students_checks_each_from_one_answers_file(tmp_path, capsys):
    bank = load_bank(BANK)
    rows = ["student,id,answer"]
    for student in ("s1", "s2"):
        for q in draw_quiz(bank, student, 3).questions:
            rows.append(f'{student},{q.id},"{q.key.answer}"')
    answers = tmp_path / "answers.csv"
    answers.write_text("\n".join(rows) + "\n")
    code = main(["quiz", "check", str(BANK), str(answers), "--student", "s1", "--student", "s2", "--count", "3",
                 "--json", "--results", str(tmp_path / "results-{student}.json")])
    results = json.loads(capsys.readouterr().out)
    assert [r["student"] for r in results] == ["s1", "s2"] and code == 0
    assert all(r["score"] == r["max_score"] for r in results)
    assert json.loads((tmp_path / "results-s2.json").read_text())["score"] == results[1]["score"]
