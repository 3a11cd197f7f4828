"""report.html: everything on one self-contained page, student-controlled text escaped, hidden items only for
instructors."""

from __future__ import annotations

import re

import pytest

from grader.facts import Facts
from grader.report import render_html
from tests.test_report_samples import INJECTION, crashed, eval_arrays, passing

DATA_PNG = "data:image/png;base64,"


@pytest.fixture(scope="module")
def passing_pages() -> dict[str, str]:
    facts, sheet = passing()
    images, labels, predictions = eval_arrays()
    return {audience: render_html(facts, sheet, student="alice", audience=audience, images=images, labels=labels,
                                  predictions=predictions) for audience in ("student", "instructor")}


@pytest.fixture(scope="module")
def crashed_page() -> str:
    facts, sheet = crashed()
    return render_html(facts, sheet, student="bob")


def _visible_text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_the_page_shows_student_score_verdict_and_every_visible_item(passing_pages):
    page = passing_pages["student"]
    text = _visible_text(page)
    assert "alice" in text and "9.5 / 11" in text and "PASSED" in text
    assert "The notebook ran to the end." in text
    for title in ("Under 20,000 parameters", "At least 99.4% test accuracy", "Receptive field covers the digit",
                  "Every code cell commented"):
        assert title in text
    assert "model.rf.final = 22; full marks at &gt;= 28" in page  # evidence, escaped like all text
    assert "partial" in text and "0.5 / 1" in text


def test_the_layer_table_lists_every_layer_with_sizes_and_receptive_fields(passing_pages):
    facts, _ = passing()
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>([^<]*)</td>\s*<td class=\"num mono\">([^<]*)</td>"
                      r"<td class=\"num mono\">([^<]*)</td><td class=\"num\">([^<]*)</td>\s*"
                      r"<td class=\"num\">([^<]*)</td>", passing_pages["student"])
    assert [(int(i), label) for i, label, *_ in rows] == (
        [(0, "input")] + [(r["index"], r["label"]) for r in facts.model.table])
    by_index = {int(r[0]): r for r in rows}
    assert by_index[7][1:] == ("maxpool 2x2", "24x24x8", "12x12x8", "", "6")
    assert by_index[18][1:] == ("conv3x3 10", "6x6x16", "4x4x10", "1,440", "22")
    assert "8,040" in passing_pages["student"]  # the total


def test_plots_are_embedded_and_nothing_is_fetched(passing_pages):
    page = passing_pages["student"]
    images = re.findall(r'<img src="([^"]*)"', page)
    assert len(images) == 4  # confusion, per digit, misclassified, sizes and RF
    assert all(src.startswith(DATA_PNG) and len(src) > 5000 for src in images)
    assert not re.search(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//|@import", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page


def test_misclassified_digits_are_titled_with_true_and_predicted_digit(passing_pages):
    assert "titled with the true and predicted digit." in passing_pages["student"]


def test_the_student_copy_leaves_hidden_items_out_and_the_instructor_copy_marks_them(passing_pages):
    student, instructor = passing_pages["student"], passing_pages["instructor"]
    assert "Printed accuracy matches the measured one" not in student
    assert "claims.accuracy_gap" not in student
    assert "includes 1 check not listed here" in _visible_text(student)
    assert "Printed accuracy matches the measured one" in instructor
    assert "hidden from students" in instructor and "INSTRUCTOR COPY" in instructor


def test_a_crashed_student_gets_a_page_that_says_what_was_not_measured_and_why(crashed_page):
    text = _visible_text(crashed_page)
    assert "bob" in text and "0 / 8" in text and "NOT PASSED" in text
    assert "The notebook stopped with an error." in text and "cell 4" in text
    why = "the notebook stopped with an error in code cell 4, so the later stages did not run"
    assert f"confusion matrix were not measured: {why}" in text
    assert f"The layer table (output sizes, receptive fields, parameters per layer) was not measured: {why}" in text
    assert "not measured; the notebook printed 99.60%" in text  # the claim is kept even when nothing was measured
    assert "50%" in text and "without a comment: code cells 2, 3 and 5" in text
    assert DATA_PNG not in crashed_page


def test_a_script_in_the_verdict_message_is_shown_as_text(crashed_page):
    assert INJECTION not in crashed_page
    assert "<script" not in crashed_page and "<img src=x" not in crashed_page
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in crashed_page


def test_without_the_test_images_the_report_says_why_the_misclassified_grid_is_missing():
    facts, sheet = passing()
    page = render_html(facts, sheet, student="alice")
    assert page.count(f'<img src="{DATA_PNG}') == 3
    assert "are not drawn: the report was written without the test images" in page


def test_a_plot_that_cannot_be_drawn_costs_that_plot_not_the_report():
    facts, sheet = passing()
    broken = facts.model_copy(update={"eval": facts.eval.model_copy(update={"confusion": [[1, 2], [3]]})})
    page = render_html(broken, sheet, student="alice")
    assert "Confusion matrix: could not be drawn" in page and "Accuracy per digit" in page


def test_a_static_check_says_the_notebook_was_not_run():
    facts, sheet = crashed()
    static = Facts(notebook=facts.notebook, claims=facts.claims)
    sheet = sheet.model_copy(update={"verdict_kind": None, "verdict_message": None})
    text = _visible_text(render_html(static, sheet, student="carol"))
    assert "The notebook was not run: this is a static check of its text." in text
    assert "not measured: the notebook was not run (static check: only its text was read)" in text


def test_the_audience_must_be_student_or_instructor():
    facts, sheet = crashed()
    with pytest.raises(ValueError, match="audience"):
        render_html(facts, sheet, student="bob", audience="everyone")


def test_without_predictions_the_misclassified_digits_are_titled_with_the_true_digit_only():
    facts, sheet = passing()
    images, labels, _ = eval_arrays()
    page = render_html(facts, sheet, student="alice", images=images, labels=labels)
    assert page.count(f'<img src="{DATA_PNG}') == 4
    assert "titled with the true digit (the predicted one was not kept)." in page
