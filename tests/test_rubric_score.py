"""Scoring facts with a rubric: passing, failing (each item for its own reason), crashed and static submissions;
bands, required items, visibility, feedback rendered with the facts."""

import pytest

from grader import yamlio
from grader.facts import Facts, spec
from grader.rubric.load import load_rubric, rubric_from_yaml
from grader.rubric.score import score


def facts(**dotted) -> Facts:
    """Facts from dotted names written with double underscores: model__params__trainable=13808."""
    nested: dict = {}
    for name, value in dotted.items():
        *sections, leaf = name.split("__")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return Facts.model_validate(nested)


GOOD = dict(
    notebook__code_cells=12, notebook__comment_coverage=1.0, notebook__uncommented_cells=[],
    claims__accuracy=99.45, claims__accuracy_gap=0.02,
    model__params__trainable=13808, model__stored__learned=13808, model__stored__trainable=13808,
    model__stored__carried=0, model__layers__linear=0, model__layers__batchnorm=6, model__layers__dropout=6,
    model__gap=True, model__transitions=2,
    train__epochs=15.0, train__epochs_checked=15.0, eval__accuracy=99.43, verdict__kind="ok",
    verdict__message="ran every cell",
    verdict__failed_cells=[], model__ops__unexpected=[],
)


def rubric(items: str, head: str = "id: t\ntitle: T\n"):
    return rubric_from_yaml(yamlio.loads(head + "items:\n" + items, "r.yaml"))


def by_id(sheet):
    return {item.id: item for item in sheet.items}


def test_a_passing_submission_gets_every_point():
    sheet = score(facts(**GOOD), load_rubric("mnist-s4"))
    assert sheet.rubric == "mnist-s4" and sheet.passed
    assert sheet.score == sheet.max_score == 100
    assert all(item.status == "passed" for item in sheet.items) and sheet.failed() == []
    items = by_id(sheet)
    assert items["params"].evidence == "model.stored.learned = 13,808; needs < 20,000"
    assert items["params"].value == 13808 and items["params"].required
    assert items["accuracy"].evidence == "eval.accuracy = 99.43%; needs >= 99.4%"
    assert items["comments"].evidence == "notebook.comment_coverage = 100%; needs >= 100%"
    assert items["gap"].evidence == "model.gap = true; needs = true"
    assert items["runs"].evidence == "verdict.kind = ok; needs = ok"
    assert items["claims"].evidence == "claims.accuracy_gap = 0.02 percentage points; needs <= 0.5 percentage points"
    assert items["params"].feedback == ("13,808 learned numbers, within the 20,000 budget: 13,808 trainable "
                                        "parameters; batch-norm running statistics are not counted.")
    assert items["claims"].feedback == "The notebook printed 99.45%; the grader measured 99.43%."
    assert sheet.verdict_kind == "ok" and sheet.verdict_message == "ran every cell"


def test_a_failing_submission_fails_each_item_for_its_own_reason():
    bad = dict(GOOD, model__stored__learned=23412, model__stored__trainable=3412, model__stored__carried=20000,
               eval__accuracy=97.5, train__epochs=25.0, train__epochs_checked=25.0,
               model__layers__batchnorm=0, model__layers__dropout=0, model__transitions=0, model__gap=False,
               model__layers__linear=2, notebook__comment_coverage=0.4, notebook__uncommented_cells=[1, 4, 6],
               claims__accuracy=99.1, claims__accuracy_gap=1.6, verdict__kind="output_limit",
               verdict__message="the notebook printed more than 8 MB", verdict__failed_cells=[3])
    sheet = score(facts(**bad), load_rubric("mnist-s4"))
    assert sheet.score == 0 and not sheet.passed
    assert {item.status for item in sheet.items if item.id != "no-lookup"} == {"failed"}  # no-lookup: ops are fine
    items = by_id(sheet)
    assert items["params"].evidence == "model.stored.learned = 23,412; needs < 20,000"
    assert items["accuracy"].evidence == ("eval.accuracy = 97.5%; no band matched "
                                          "(points: >= 99.4% for 30, >= 99.2% for 20, >= 99% for 15, >= 98% for 5)")
    assert items["epochs"].evidence == "train.epochs_checked = 25; needs <= 20"
    assert items["batchnorm"].evidence == "model.layers.batchnorm = 0; needs >= 1"
    assert items["dropout"].evidence == "model.layers.dropout = 0; needs >= 1"
    assert items["transition"].evidence == "model.transitions = 0; needs >= 1"
    assert items["gap"].evidence == "model.gap = false; needs = true"
    assert items["no-linear"].evidence == "model.layers.linear = 2; needs = 0"
    assert items["comments"].evidence.startswith("notebook.comment_coverage = 40%; no band matched")
    assert items["runs"].evidence == "verdict.kind = output_limit; needs = ok"
    assert items["claims"].evidence == "claims.accuracy_gap = 1.6 percentage points; needs <= 0.5 percentage points"
    assert items["params"].feedback.startswith("23,412 learned numbers is over the 20,000 budget (3,412 trainable "
                                               "parameters and 20,000 other stored numbers: frozen parameters,")
    assert items["params"].feedback.endswith("and keep no frozen copies or tables in the model.")
    assert items["comments"].feedback == ("40% of the code cells have a comment. Add one to code cells 1, 4 and 6 "
                                          "(code cells counted from 1).")
    assert items["runs"].feedback == "The notebook did not run through: the notebook printed more than 8 MB"
    assert items["no-errors"].evidence == "verdict.failed_cells = [3]; needs = []"
    assert items["claims"].feedback.startswith("The notebook printed 99.1% but the grader measured 97.5%.")


def test_a_crashed_submission_is_not_measured_and_says_why():
    crashed = facts(notebook__code_cells=9, notebook__comment_coverage=1.0, notebook__uncommented_cells=[],
                    claims__accuracy=99.5, verdict__kind="crash", verdict__cell=7, verdict__failed_cells=[7],
                    verdict__message="cell 7 failed: ZeroDivisionError: division by zero\nTraceback ...")
    sheet = score(crashed, load_rubric("mnist-s3"))
    items = by_id(sheet)
    assert not sheet.passed  # the required parameter count could not be measured
    assert sheet.score == 15 and [i.id for i in sheet.items if i.status == "passed"] == ["comments"]
    why = "not measured: the notebook crashed in code cell 7 (cell 7 failed: ZeroDivisionError: division by zero)"
    for item_id in ("params", "accuracy", "claims"):
        assert items[item_id].status == "not_measured" and items[item_id].points == 0
        assert items[item_id].evidence == why and items[item_id].value is None
    assert items["params"].feedback == ("Not measured: the notebook crashed in code cell 7 "
                                        "(cell 7 failed: ZeroDivisionError: division by zero).")
    assert items["claims"].feedback.startswith("The printed accuracy could not be compared")  # its own template
    assert items["runs"].status == "failed" and items["runs"].evidence == "verdict.kind = crash; needs = ok"
    assert sheet.verdict_kind == "crash"


def test_a_static_check_says_what_it_cannot_judge():
    static = facts(grading__mode="static", notebook__code_cells=9, notebook__comment_coverage=0.5,
                   notebook__uncommented_cells=[2, 3], claims__accuracy=99.5)
    sheet = score(static, load_rubric("mnist-s3"))
    items = by_id(sheet)
    assert items["params"].status == "not_judged" and items["params"].value is None
    assert items["params"].evidence == "not judged in a static check: it needs a run"
    assert items["params"].feedback == "Not judged in a static check: it needs a run."
    assert items["runs"].status == "not_judged" and items["claims"].status == "not_judged"
    assert items["comments"].status == "partial" and items["comments"].points == 5
    assert not sheet.passed and sheet.not_judged[:2] == ["params", "accuracy"]


def test_bands_first_match_wins_and_partial_credit_is_explained():
    accuracy = load_rubric("mnist-s3")
    for measured, points, status in [(99.43, 40, "passed"), (99.4, 40, "passed"), (99.39, 30, "partial"),
                                     (99.0, 20, "partial"), (98.5, 10, "partial"), (97.99, 0, "failed")]:
        item = by_id(score(facts(**dict(GOOD, eval__accuracy=measured)), accuracy))["accuracy"]
        assert (item.points, item.status, item.max_points) == (points, status, 40), measured
    item = by_id(score(facts(**dict(GOOD, eval__accuracy=99.25)), accuracy))["accuracy"]
    assert item.evidence == "eval.accuracy = 99.25%; >= 99.2% gives 30 of 40 points (>= 99.4% gives all)"
    assert item.feedback.startswith("99.25% on the 10,000 test images: 30 of 40 points; 99.4% earns all of them.")
    # first matching band, not the best one: order is the author's
    odd = rubric("  - {id: a, title: A, fact: eval.accuracy, points: 10, bands: [{ge: 99, points: 5}, "
                 "{ge: 99.4, points: 10}]}\n")
    assert by_id(score(facts(eval__accuracy=99.5), odd))["a"].points == 5


def test_numbers_compare_with_a_tolerance():
    r = rubric("  - {id: a, title: A, fact: eval.accuracy, points: 1, ge: 99.4}\n"
               "  - {id: b, title: B, fact: model.params.trainable, points: 1, lt: 20000}\n"
               "  - {id: c, title: C, fact: train.epochs, points: 1, between: [1, 20]}\n"
               "  - {id: d, title: D, fact: verdict.kind, points: 1, in: [ok, output_limit]}\n")
    accuracy = 9934 / 10000 * 100 + 0.06  # 99.39999999999999: 9,940 right computed another way
    items = by_id(score(facts(eval__accuracy=accuracy, model__params__trainable=20000, train__epochs=20.0,
                              verdict__kind="output_limit"), r))
    assert accuracy < 99.4 and items["a"].status == "passed"
    assert items["b"].status == "failed"
    assert items["c"].status == "passed" and items["c"].evidence == "train.epochs = 20; needs between 1 and 20"
    assert items["d"].status == "passed"
    assert items["d"].evidence == "verdict.kind = output_limit; needs one of ok, output_limit"


def test_required_items_decide_passed():
    r = rubric("  - {id: size, title: S, fact: model.params.trainable, points: 10, lt: 20000, required: true}\n"
               "  - {id: acc, title: A, fact: eval.accuracy, points: 90, ge: 99.4}\n")
    big = score(facts(model__params__trainable=25000, eval__accuracy=99.6), r)
    assert big.score == 90 and not big.passed
    weak = score(facts(model__params__trainable=9000, eval__accuracy=98.0), r)
    assert weak.score == 10 and weak.passed  # an optional item failing does not fail the submission
    assert score(facts(), rubric("  - {id: a, title: A, fact: eval.accuracy, points: 1, ge: 99}\n")).passed


def test_hidden_items_are_left_out_of_a_students_sheet():
    r = rubric("  - {id: seen, title: S, fact: model.params.trainable, points: 10, lt: 20000}\n"
               "  - {id: secret, title: H, fact: eval.accuracy, points: 30, ge: 99.4, visibility: hidden,"
               " required: true}\n"
               "  - {id: later, title: L, fact: train.epochs, points: 60, le: 20, visibility: after_due_date}\n")
    f = facts(model__params__trainable=9000, eval__accuracy=98.0, train__epochs=30.0)
    full = score(f, r)
    assert [i.visibility for i in full.items] == ["visible", "hidden", "after_due_date"]
    assert (full.score, full.max_score, full.passed) == (10, 100, False)
    student = score(f, r, show_hidden=False)
    assert [i.id for i in student.items] == ["seen"]
    assert (student.score, student.max_score, student.passed) == (10, 10, True)


def test_feedback_templates_see_nested_facts_value_item_and_points():
    r = rubric("  - id: a\n    title: Small\n    fact: model.params.trainable\n    points: 10\n    lt: 20000\n"
               "    feedback:\n"
               "      pass: '{{ item.title }}: {{ value | num }} ({{ points | num }}/{{ item.points | num }}), "
               "{{ model.layers.conv }} convs, {{ notebook.comment_coverage | pct }} commented'\n"
               "      fail: 'too big by {{ (value - 20000) | num }}'\n")
    f = facts(model__params__trainable=13808, model__layers__conv=7, notebook__comment_coverage=0.8333)
    assert by_id(score(f, r))["a"].feedback == "Small: 13,808 (10/10), 7 convs, 83.3% commented"
    assert by_id(score(facts(model__params__trainable=21500), r))["a"].feedback == "too big by 1,500"
    plain = rubric("  - {id: a, title: A, fact: eval.accuracy, points: 1, ge: 99.4}\n")
    assert by_id(score(facts(eval__accuracy=99.5), plain))["a"].feedback == ""


def test_a_template_that_fails_on_real_facts_does_not_stop_scoring():
    r = rubric("  - id: a\n    title: A\n    fact: notebook.comment_coverage\n    points: 1\n    eq: 1\n"
               "    feedback: {fail: \"cells {{ notebook.uncommented_cells | join(', ') }}\"}\n")
    item = by_id(score(facts(notebook__comment_coverage=0.5), r))["a"]  # uncommented_cells not measured
    assert item.status == "failed" and item.feedback.startswith("(the rubric's feedback for a failed on these facts:")


@pytest.mark.parametrize("fact, value, shown", [
    ("model.params.trainable", 13808, "13,808"), ("eval.accuracy", 99.42, "99.42%"),
    ("notebook.comment_coverage", 0.75, "75%"), ("train.epochs", 14.5, "14.5"), ("model.gap", False, "false"),
    ("notebook.uncommented_cells", list(range(10)), "[0, 1, 2, 3, 4, 5, 6, 7, ...] (10 in all)"),
    ("eval.accuracy", None, "not measured"), ("model.rf.final", 28, "28 px"), ("train.seconds", 61.5, "61.5 s"),
    ("claims.accuracy_gap", 0.6, "0.6 percentage points"),
])
def test_values_are_formatted_for_people(fact, value, shown):
    assert spec(fact).show(value) == shown


@pytest.mark.parametrize("fact, value, shown", [  # each shows its unit, as its declaration says (issue 25: no %)
    ("eval.unseen_accuracy", 98.7, "98.7%"), ("claims.run_accuracy", 99.1, "99.1%"),
    ("claims.last_accuracy", 99.0, "99%"), ("eval.per_class", [99.8, 98.25], "[99.8%, 98.25%]"),
    ("claims.run_accuracy_gap", 1.5, "1.5 percentage points"), ("eval.unseen_gap", -0.25, "-0.25 percentage points"),
])
def test_every_percent_fact_shows_its_unit(fact, value, shown):
    assert spec(fact).show(value) == shown


def test_an_item_on_unseen_accuracy_states_it_in_percent():
    r = rubric("  - id: u\n    title: U\n    fact: eval.unseen_accuracy\n    points: 1\n    ge: 99\n")
    item = by_id(score(facts(eval__unseen_accuracy=98.7), r))["u"]
    assert item.evidence == "eval.unseen_accuracy = 98.7%; needs >= 99%"


def test_the_sheet_is_json_serialisable():
    sheet = score(facts(**GOOD), load_rubric("mnist-s5"))
    data = sheet.model_dump(mode="json")
    # 13,808 parameters is over the 8,000 budget
    assert data["score"] == 80 and len(data["items"]) == len(load_rubric("mnist-s5").items)
    assert not data["passed"]
