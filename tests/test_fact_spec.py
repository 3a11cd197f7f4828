"""Facts describe themselves (issue 25): each fact's declaration says its unit, the stage that measures it, the
depths that judge it and where its value comes from; each verdict kind is one entry. Rubric validation, scoring,
the not-judged and not-measured reasons and the report read these, never lists of fact-name prefixes."""

from __future__ import annotations

from typing import get_args

import pytest

from grader import yamlio
from grader.fact_spec import DEPTHS, PROVENANCES, STAGES, VERDICTS, VerdictKind
from grader.facts import Facts, known_facts, spec
from grader.report.summary import build_view
from grader.rubric.load import rubric_from_yaml
from grader.rubric.reasons import not_judged_reason, not_measured_reason
from grader.rubric.score import score


def facts(**sections) -> Facts:
    return Facts.model_validate(sections)


def rubric(*facts_read: str):
    items = "".join(f"  - {{id: i{n}, title: T, fact: {fact}, points: 10, ge: 1}}\n"
                    for n, fact in enumerate(facts_read))
    return rubric_from_yaml(yamlio.loads("id: t\ntitle: T\nitems:\n" + items, "r.yaml"))


def test_every_fact_is_fully_declared():
    for name in known_facts():
        declared = spec(name)
        assert declared.stage in STAGES and declared.provenance in PROVENANCES, name
        assert declared.judged and declared.judged <= set(DEPTHS), name
        if declared.kind == "number":
            assert declared.unit is not None, name


def test_every_verdict_kind_is_one_entry():
    assert set(VERDICTS) == set(get_args(VerdictKind))
    assert VERDICTS["timeout"].headline == "The notebook ran out of time."


def test_a_section_declares_for_its_fields_and_a_field_overrides_it():
    assert spec("model.stored.learned").provenance == "grader"
    assert spec("model.stored.bn_batches").provenance == "student"  # batch norm counted it in the student's process
    # one section (CellErrorFacts) in two places takes each parent's declaration
    assert spec("notebook.saved_error.type").stage == "static" and spec("verdict.error.type").stage == "verdict"
    assert spec("notebook.saved_error.type").judged_at("static") and not spec("verdict.error.type").judged_at("static")
    assert spec("claims.accuracy_gap").unit == "points" and spec("claims.accuracy_gap").stage == "derived"


@pytest.mark.parametrize("depth, mode, dry_run", [("static", "static", False), ("evaluate", "evaluate", False),
                                                  ("dry_run", "execute", True), ("execute", "execute", False)])
def test_what_a_depth_judges_is_what_the_declarations_say(depth, mode, dry_run):
    graded = facts(grading={"mode": mode, "dry_run": dry_run}, verdict={"kind": "ok"})
    for name in known_facts():
        assert (not_judged_reason(graded, name) is None) == spec(name).judged_at(depth), name


# What the hand-kept prefix lists said before the facts declared it (issue 25), and the one drift the declarations
# fix: what the graded run printed (claims.run_accuracy, and its gap) only a full run judges.
_OLD_NEEDS_RUN = ("model.", "train.", "eval.", "verdict.", "claims.accuracy_gap", "claims.params_gap")
_OLD_RUN_ONLY = ("train.", "verdict.kind", "verdict.cell", "verdict.message")
_OLD_NOT_IN_DRY_RUN = ("eval.", "train.", "claims.accuracy_gap")
_RUN_PRINTED = ("claims.run_accuracy", "claims.run_accuracy_gap")


def test_the_declarations_judge_what_the_old_lists_did_but_what_only_the_full_run_printed():
    for name in known_facts():
        declared = spec(name)
        if name in _RUN_PRINTED:
            assert declared.judged == {"execute"}
            continue
        assert declared.judged_at("static") != name.startswith(_OLD_NEEDS_RUN), name
        assert declared.judged_at("evaluate") != name.startswith(_OLD_RUN_ONLY), name
        assert declared.judged_at("dry_run") != name.startswith(_OLD_NOT_IN_DRY_RUN), name
        assert declared.judged_at("execute"), name


def test_evaluate_mode_leaves_what_only_the_full_run_printed_out_of_the_maximum():
    sheet = score(facts(grading={"mode": "evaluate"}, verdict={"kind": "ok"}, eval={"accuracy": 99.0}),
                  rubric("claims.run_accuracy", "eval.accuracy"))
    run, measured = sheet.items
    assert run.status == "not_judged" and run.max_points == 0 and sheet.left_out == ["i0"]
    assert measured.status == "passed" and sheet.max_score == 10


def test_one_not_measured_reason_for_an_item_and_for_the_report():
    crashed = facts(grading={"mode": "execute"}, verdict={"kind": "crash", "cell": 4, "message": "IndexError: x"})
    assert not_measured_reason(crashed, "eval.accuracy") == "the notebook crashed in code cell 4 (IndexError: x)"
    assert not_measured_reason(crashed) == ("the notebook stopped with an error in code cell 4, so the later stages "
                                            "did not run")
    static = facts(grading={"mode": "static"})
    assert not_measured_reason(static) == "the notebook was not run (static check: only its text was read)"
    assert not_measured_reason(static, "claims.run_accuracy") == "the notebook's outputs do not show it"
    sheet = score(crashed, rubric("eval.accuracy"))
    view = build_view(crashed, sheet, student="bob")
    assert view.verdict.headline == VERDICTS["crash"].headline and view.not_measured == not_measured_reason(crashed)


def test_the_report_shows_unseen_accuracy_in_its_unit():
    measured = facts(grading={"mode": "evaluate"}, verdict={"kind": "ok"},
                     eval={"accuracy": 99.4, "unseen_accuracy": 98.7, "unseen_gap": 0.7})
    view = build_view(measured, score(measured, rubric("eval.accuracy")), student="ada")
    unseen = next(k for k in view.key_facts if k.fact == "eval.unseen_accuracy")
    assert unseen.value == "98.70%" and "+0.70 points from the test accuracy" in unseen.note

