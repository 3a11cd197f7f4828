"""results.json for Gradescope: exactly its keys, the score is the sum of the tests, partial items are failed."""

from __future__ import annotations

import pytest

from grader.report.gradescope import GradescopeTest, results, sheet_results
from tests.test_report_samples import crashed, passing

TOP_KEYS = {"score", "execution_time", "output", "stdout_visibility", "tests"}
TEST_KEYS = {"name", "score", "max_score", "status", "output", "visibility"}


def test_one_test_per_item_with_exactly_the_gradescope_keys():
    facts, sheet = passing()
    out = sheet_results(sheet, facts, execution_time=12.34567)
    assert set(out) == TOP_KEYS
    assert all(set(t) == TEST_KEYS for t in out["tests"])
    assert len(out["tests"]) == len(sheet.items)
    assert out["score"] == sum(t["score"] for t in out["tests"]) == sheet.score
    assert out["execution_time"] == 12.346 and out["stdout_visibility"] == "hidden"
    assert out["output"].startswith("Session 5: under 20k parameters, 99.4%: 9.5 / 11 (passed)")


def test_partial_items_are_failed_with_their_partial_score_and_visibility_is_kept():
    facts, sheet = passing()
    tests = {t["name"]: t for t in sheet_results(sheet, facts)["tests"]}
    rf = tests["Receptive field covers the digit (rf)"]
    assert (rf["status"], rf["score"], rf["max_score"]) == ("failed", 0.5, 1)
    assert rf["output"].startswith("[partial] model.rf.final = 22") and "Add one more 3x3" in rf["output"]
    assert tests["Under 20,000 parameters (params) [required]"]["status"] == "passed"
    assert tests["Printed accuracy matches the measured one (claims)"]["visibility"] == "hidden"


def test_a_crashed_run_is_named_in_the_output_and_unmeasured_items_score_zero():
    facts, sheet = crashed()
    out = sheet_results(sheet, facts)
    assert "did not finish (crash): cell 4 failed" in out["output"]
    assert out["score"] == 0 and all(t["status"] == "failed" for t in out["tests"])
    assert out["tests"][0]["output"].startswith("[not measured] ")


def test_the_generic_writer_is_what_a_quiz_uses():
    out = results([GradescopeTest("size (shape)", 3, 3, True, "Correct: 199x199x32."),
                   GradescopeTest("rf (rf)", 0, 4, False, "You answered 6; the answer is 5.", "after_due_date")],
                  output="Quiz q1 for s1: 3 / 7", execution_time=0.5, stdout_visibility="visible")
    assert out["score"] == 3 and out["stdout_visibility"] == "visible"
    assert out["tests"][1] == {"name": "rf (rf)", "score": 0, "max_score": 4, "status": "failed",
                               "output": "You answered 6; the answer is 5.", "visibility": "after_due_date"}


def test_an_unknown_visibility_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match="after_published"):
        results([GradescopeTest("x", 1, 1, True, visibility="secret")], output="")
    with pytest.raises(ValueError, match="stdout_visibility"):
        results([], output="", stdout_visibility="loud")
