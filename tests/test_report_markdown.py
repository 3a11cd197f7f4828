"""report.md: the page's content as Markdown text, with student text unable to open HTML or break a table."""

from __future__ import annotations

from grader.report import render_markdown
from grader.report.markdown import cell, fence, text
from tests.test_report_samples import INJECTION, crashed, eval_arrays, passing


def _table(markdown: str, header: str) -> list[list[str]]:
    """The rows of the table whose header line starts with `header`, as cells."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_the_markdown_report_has_score_items_facts_confusion_and_layers():
    facts, sheet = passing()
    _, labels, predictions = eval_arrays()
    md = render_markdown(facts, sheet, student="alice", labels=labels, predictions=predictions)
    assert md.startswith("# alice: 9.5 / 11 (passed)\n")
    items = _table(md, "| Item |")
    assert [row[1] for row in items] == ["3 / 3", "4 / 4", "1 / 1", "0.5 / 1", "0 / 1", "**9.5 / 11**"]
    assert "Your last layer sees 22x22 pixels.<br>Add one more" in md  # a line break inside a cell
    assert ["Test accuracy", "99.41%", "the notebook printed 99.45% (+0.04 points)"] in _table(md, "| Fact |")
    confusion = _table(md, "| true \\ predicted |")
    assert len(confusion) == 10 and [int(n) for n in confusion[0][1:]] == facts.eval.confusion[0]
    layers = _table(md, "| # | Layer |")
    assert layers[0][:4] == ["0", "input", "", "28x28x1"]
    assert ["18", "conv3x3 10", "6x6x16", "4x4x10", "1,440", "22", "2"] in layers
    first = facts.eval.misclassified[0]
    assert f"{first} (true {labels[first]} -> {predictions[first]})" in md
    assert "![" not in md and "data:image" not in md and "<img" not in md


def test_hidden_items_only_in_the_instructor_copy():
    facts, sheet = passing()
    assert "claims.accuracy_gap" not in render_markdown(facts, sheet, student="alice")
    instructor = render_markdown(facts, sheet, student="alice", audience="instructor")
    assert "claims.accuracy_gap" in instructor and "hidden from students" in instructor


def test_a_crashed_student_gets_a_report_that_says_what_was_not_measured_and_why():
    facts, sheet = crashed()
    md = render_markdown(facts, sheet, student="bob")
    assert md.startswith("# bob: 0 / 8 (not passed)\n")
    assert "Failing cell: **code cell 4** (counting code cells from 1" in md
    assert "confusion matrix were not measured: the notebook stopped with an error in code cell 4" in md
    assert "The layer table (output sizes, receptive fields, parameters per layer) was not measured" in md
    assert ["Trainable parameters", "—", "not measured"] in _table(md, "| Fact |")


def test_student_text_cannot_open_html_tags_in_prose_but_code_fences_keep_it_verbatim():
    facts, sheet = crashed()
    md = render_markdown(facts, sheet, student="bob")
    prose, _, rest = md.partition("```text")
    assert "<script" not in prose and "&lt;script>alert('pwned')&lt;/script>&lt;img" in prose
    tail, _, after = rest.partition("```")
    assert INJECTION in tail  # inside a fence it is text already
    assert "<script" not in after


def test_cells_escape_pipes_and_newlines_and_prose_stays_readable():
    assert cell("a | b\nc") == "a \\| b<br>c"
    assert text("needs < 20,000 and <b>") == "needs < 20,000 and &lt;b>"
    assert text("<!-- hide --> </x>") == "&lt;!-- hide --> &lt;/x>"


def test_a_fence_is_longer_than_any_backtick_run_inside_it():
    block = fence("print('```')\n````")
    assert block.startswith("`````text\n") and block.endswith("\n`````")
