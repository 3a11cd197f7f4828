"""Rubrics: the shipped ones load and total 100; every authoring mistake names the file, the line, the item
and what is allowed."""

import textwrap

import pytest

from grader import yamlio
from grader.errors import GraderError
from grader.facts import known_facts, spec
from grader.rubric import schema
from grader.rubric.load import RUBRICS, load_rubric, rubric_from_yaml, rubric_hash, shipped
from grader.rubric.score import items_needing_execution
from grader.settings import RunLimits

HEAD = "id: t\ntitle: T\nitems:\n"
ITEM = "  - id: a\n    title: A\n    points: 10\n"  # lines 4-6; the next key is on line 7


def load(text: str):
    return rubric_from_yaml(yamlio.loads(text, "r.yaml"))


def error(text: str) -> GraderError:
    with pytest.raises(GraderError) as err:
        load(text)
    return err.value


# --- the shipped rubrics -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist-s3", "mnist-s4", "mnist-s5"])
def test_shipped_rubric_loads_by_name_totals_100_and_runs_the_notebook(name):
    rubric = load_rubric(name)
    assert rubric.id == name and rubric.source == str(RUBRICS / f"{name}.yaml")
    assert rubric.max_score == 100
    assert rubric.mode == "execute" and rubric.model == "model"
    assert rubric.limits.time == 3600 and rubric.limits.run_limits().memory_bytes == 6 << 30
    required = [i.id for i in rubric.items if i.required]
    # the required items are the assignment: the budget, the accuracy, comments (and for s4/s5 the architecture)
    assert required[:2] == ["params", "accuracy"] and "comments" in required
    assert rubric.pass_.all_required and rubric.pass_.min_score is None
    assert rubric.item("accuracy").full_band.ge == 99.4
    assert (RUBRICS / f"{name}.yaml").read_text().count("\n  # ") >= 5  # an instructor can read it without docs


def test_shipped_rubrics_are_the_three_assignments():
    assert shipped() == ["mnist-s3", "mnist-s4", "mnist-s5"]


def test_s3_items():
    rubric = load_rubric("mnist-s3")
    assert {i.id: i.fact for i in rubric.items}.items() >= {
        "params": "model.stored.learned", "accuracy": "eval.accuracy", "comments": "notebook.comment_coverage",
        "runs": "verdict.kind", "no-errors": "verdict.failed_cells", "claims": "claims.accuracy_gap"}.items()
    assert rubric.item("params").lt == 20000
    assert [(b.ge, b.points) for b in rubric.item("comments").bands][0] == (1.0, 15)
    assert rubric.item("claims").le == 0.5 and rubric.item("claims").points == 5


@pytest.mark.parametrize("name, params, epochs", [("mnist-s4", 20000, 20), ("mnist-s5", 8000, 15)])
def test_s4_and_s5_add_the_architecture_and_the_epoch_budget(name, params, epochs):
    rubric = load_rubric(name)
    s3_facts = {i.fact for i in load_rubric("mnist-s3").items}
    assert s3_facts < {i.fact for i in rubric.items}
    assert rubric.item("params").lt == params and rubric.item("epochs").le == epochs
    assert rubric.item("batchnorm").ge == 1 and rubric.item("dropout").ge == 1 and rubric.item("transition").ge == 1
    assert rubric.item("gap").eq is True and rubric.item("no-linear").eq == 0


def test_items_needing_execution_are_those_a_static_check_cannot_judge():
    assert items_needing_execution(load_rubric("mnist-s3"))[:5] == ["params", "accuracy", "runs", "no-errors", "claims"]
    assert "comments" not in items_needing_execution(load_rubric("mnist-s5"))


def test_limits_become_run_limits():
    rubric = load(HEAD.replace("items:", "limits: {time: 600, cell_time: 300, memory: 800M, gpu: no}\nitems:")
                  + ITEM + "    fact: model.gap\n    eq: true\n")
    assert rubric.limits.gpu == "no"  # YAML reads a bare `no` as false
    assert rubric.limits.run_limits() == RunLimits(wall_seconds=600, cell_seconds=300, memory_bytes=800 << 20)


def test_the_example_in_the_help_is_a_valid_rubric():
    doc = schema.__doc__
    rubric = load(textwrap.dedent(doc[doc.index("    id:"):doc.index("An item passes")]))
    assert [i.id for i in rubric.items] == ["params", "accuracy"]


def test_unknown_name_lists_the_shipped_rubrics():
    with pytest.raises(GraderError) as err:
        load_rubric("mnist-s9")
    assert "no rubric file or shipped rubric named 'mnist-s9'" in err.value.what
    assert "mnist-s3, mnist-s4, mnist-s5" in err.value.fix


# --- the hash that resumable grading keys on ------------------------------------------------------------------------

def test_rubric_hash_ignores_key_order_and_comments_but_not_content():
    a = load(HEAD + ITEM + "    fact: model.params.trainable\n    lt: 20000\n")
    b = load("# reordered\nitems:\n  - fact: model.params.trainable   # same item\n    lt: 20000\n"
             "    points: 10\n    title: A\n    id: a\ntitle: T\nid: t\n")
    c = load(HEAD + ITEM.replace("10", "11") + "    fact: model.params.trainable\n    lt: 20000\n")
    assert rubric_hash(a) == rubric_hash(b)
    assert len(rubric_hash(a)) == 64 and rubric_hash(a) != rubric_hash(c)
    assert rubric_hash(load_rubric("mnist-s3")) == rubric_hash(load_rubric(RUBRICS / "mnist-s3.yaml"))


# --- authoring mistakes --------------------------------------------------------------------------------------------

def test_unknown_fact_lists_the_known_facts():
    err = error(HEAD + ITEM + "    fact: model.param.trainable\n    lt: 20000\n")
    assert err.where == "r.yaml:7"
    assert err.what == "item 'a': fact: unknown fact 'model.param.trainable' (did you mean 'model.params.trainable'?)"
    assert err.fix == "known facts: " + ", ".join(known_facts())


def test_missing_or_double_comparison_lists_the_comparisons():
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n")
    assert err.where == "r.yaml:4"
    assert err.what == "item 'a': an item needs exactly one comparison, or bands (found none)"
    assert err.fix.startswith("comparisons: lt, le, ge, gt (a number), eq (a value), in (a list of values), between")
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    ge: 99\n    lt: 100\n")
    assert "(found lt, ge)" in err.what
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    bands: [{ge: 99, lt: 100, points: 10}]\n")
    assert err.what == "item 'a': bands[0]: a band needs exactly one comparison (found lt, ge)"


def test_unknown_key_suggests_the_close_one():
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    gte: 99.4\n")
    assert err.where == "r.yaml:8"
    assert err.what == "item 'a': unknown key 'gte' (did you mean 'ge'?)"
    assert err.fix.startswith("allowed keys here: lt, le, ge, gt, eq, in, between, id, title, fact, points, bands")
    err = error("id: t\ntitel: T\nitems: []\n")
    assert err.where == "r.yaml:2" and err.what.startswith("unknown key 'titel' (did you mean 'title'?)")
    err = error(HEAD + ITEM + "    fact: model.gap\n    eq: true\n    feedback: {pass: x, failed: y}\n")
    assert err.what == "item 'a': feedback: unknown key 'failed' (did you mean 'fail'?)"
    assert err.fix == "allowed keys here: pass, fail, partial, not_measured"


def test_wrong_type_names_the_file_line_and_item():
    err = error(HEAD + "  - id: acc\n    title: A\n    points: ten\n    fact: eval.accuracy\n    ge: 99\n")
    assert err.where == "r.yaml:6"
    assert err.what.startswith("item 'acc': points: Input should be a valid number")
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    ge: '99'\n")
    assert err.where == "r.yaml:8" and err.what.startswith("item 'a': ge: Input should be a valid number")
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    ge: true\n")
    assert err.where == "r.yaml:8"


def test_comparison_must_fit_the_fact():
    err = error(HEAD + ITEM + "    fact: model.gap\n    ge: 1\n")
    assert err.where == "r.yaml:8"
    assert err.what == "item 'a': ge compares numbers, but model.gap is true or false"
    assert err.fix == "use eq: true or eq: false"
    err = error(HEAD + ITEM + "    fact: verdict.kind\n    eq: okay\n")
    assert err.what == "item 'a': eq: 'okay' never matches verdict.kind (did you mean 'ok'?)"
    assert err.fix.startswith("verdict.kind is one of: ok, timeout, memory, crash")
    err = error(HEAD + ITEM + "    fact: model.layers.linear\n    in: [0, 'none']\n")
    assert err.what == "item 'a': in: 'none' never matches model.layers.linear" and "write a number" in err.fix
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    between: [99.5, 99]\n")
    assert err.what == "item 'a': between: [99.5, 99] is empty"
    assert err.fix == "write the low end first: between: [99, 99.5]"


def test_bands_must_reach_the_items_points():
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    bands:\n      - {ge: 99.4, points: 8}\n")
    assert err.where == "r.yaml:8" and "no band gives the item's 10 points" in err.what
    err = error(HEAD + ITEM + "    fact: eval.accuracy\n    bands:\n      - {ge: 99.4, points: 10}\n"
                "      - {ge: 99, points: 12}\n")
    assert err.where == "r.yaml:10" and "a band gives 12 points, more than the item's 10" in err.what


def test_bad_literal_lists_the_allowed_values():
    err = error(HEAD + ITEM + "    fact: model.gap\n    eq: true\n    visibility: secret\n")
    assert err.where == "r.yaml:9" and err.what == "item 'a': visibility: 'secret' is not allowed"
    assert err.fix == "use one of: 'visible', 'hidden' or 'after_due_date'"
    err = error("id: t\ntitle: T\nmode: run\nitems: []\n")
    assert err.where == "r.yaml:3" and err.fix == "use one of: 'static', 'evaluate' or 'execute'"


def test_bad_limits():
    gap = ITEM + "    fact: model.gap\n    eq: true\n"
    err = error("id: t\ntitle: T\nlimits:\n  memory: lots\nitems:\n" + gap)
    assert err.where == "r.yaml:4" and err.what == "limits.memory: 'lots' is not a size"
    err = error("id: t\ntitle: T\nlimits: {gpu: yes}\nitems: []\n")
    assert "gpu: true is ambiguous" in err.what and "'required'" in err.fix
    err = error("id: t\ntitle: T\nlimits:\n  time: 60\n  cell_time: 90\nitems:\n" + gap)
    assert err.where == "r.yaml:5" and "cell_time 90 is longer than time 60" in err.what


def test_bad_template_names_the_item_and_the_line():
    err = error(HEAD + ITEM + "    fact: model.gap\n    eq: true\n    feedback:\n      pass: 'GAP {{ value '\n")
    assert err.where == "r.yaml:10"
    assert err.what.startswith("item 'a': feedback.pass: template syntax error:")
    err = error(HEAD + ITEM + "    fact: model.gap\n    eq: true\n    feedback:\n      pass: ok\n"
                "      fail: '{{ modle.layers.linear }} linear layers'\n")
    assert err.where == "r.yaml:11" and err.what == "item 'a': feedback.fail: 'modle' is undefined"
    assert "value, item, points, the facts (grading, notebook, claims, model" in err.fix


def test_templates_are_sandboxed():
    err = error(HEAD + ITEM + "    fact: model.gap\n    eq: true\n    feedback:\n"
                "      pass: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n")
    assert err.where == "r.yaml:10" and "feedback.pass" in err.what


def test_duplicate_ids_point_at_both():
    item = ITEM + "    fact: model.gap\n    eq: true\n"
    err = error(HEAD + item + item)
    assert err.where == "r.yaml:9" and err.what == "item id 'a' is used twice"
    assert err.fix == "item ids must be unique; the first is here (line 4)"


def test_missing_key_and_not_a_mapping():
    err = error("id: t\nitems:\n" + ITEM + "    fact: model.gap\n    eq: true\n")
    assert err.where == "r.yaml:1" and err.what == "missing key 'title'" and "description, mode, limits" in err.fix
    assert "a rubric is a mapping" in error("- a\n- b\n").what
    assert "at least 1 item" in error("id: t\ntitle: T\nitems: []\n").what


def test_a_static_rubric_cannot_read_what_only_a_run_measures():
    err = error("id: t\ntitle: T\nmode: static\nitems:\n" + ITEM + "    fact: eval.accuracy\n    ge: 99.4\n")
    assert err.where == "r.yaml:8"
    assert err.what == ("item 'a' reads eval.accuracy, which only a run measures (the clean evaluation of the "
                        "exported model), but mode is static")
    assert err.fix == "use mode: execute or mode: evaluate, or drop the item"
    static = load("id: t\ntitle: T\nmode: static\nitems:\n" + ITEM + "    fact: notebook.comment_coverage\n    eq: 1\n")
    assert items_needing_execution(static) == []


@pytest.mark.parametrize("fact", ["claims.run_accuracy", "claims.run_accuracy_gap", "train.epochs_checked"])
def test_a_static_rubric_on_a_fact_only_the_graded_run_prints_is_refused(fact):
    """Issue 25: `claims.run_accuracy` was accepted in a static rubric, then scored not_measured ("the outputs do
    not show it"). Its declaration says only execute mode judges it, so the rubric is refused where it is loaded."""
    err = error("id: t\ntitle: T\nmode: static\nitems:\n" + ITEM + f"    fact: {fact}\n    ge: 99\n")
    assert err.where == "r.yaml:8" and err.what.startswith(f"item 'a' reads {fact}, which only a run measures (")
    assert err.fix == "use mode: execute, or drop the item"


def test_a_static_rubric_may_read_no_fact_a_static_check_does_not_judge():
    for fact in (f for f in known_facts() if not spec(f).judged_at("static")):
        declared = spec(fact)
        ref = {"number": "0", "bool": "true", "list": "[]", "record": "{}"}.get(declared.kind,
                                                                               (declared.choices or ("x",))[0])
        text = f"id: t\ntitle: T\nmode: static\nitems:\n{ITEM}    fact: {fact}\n    eq: {ref}\n"
        assert "only a run measures" in error(text).what, fact


def test_several_problems_are_all_shown_each_with_its_line():
    err = error(HEAD + "  - id: a\n    title: A\n    points: x\n    fact: nope\n    lt: 1\n")
    assert [p.where for p in err.problems] == ["r.yaml:6", "r.yaml:7"]
    shown = err.render()
    assert shown.startswith("r.yaml: 2 problems, each with its line and what to do:")
    assert "r.yaml:6: item 'a': points:" in shown and "r.yaml:7: item 'a': fact: unknown fact 'nope'" in shown


def test_a_pass_rule_is_read_and_checked():
    gap = ITEM + "    fact: model.gap\n    eq: true\n"
    rubric = load(HEAD.replace("items:", "pass: {all_required: false, min_score: 2}\nitems:") + gap)
    assert rubric.pass_.all_required is False and rubric.pass_.min_score == 2
    err = error("id: t\ntitle: T\npass:\n  min_score: 150\nitems:\n" + gap)
    assert err.where == "r.yaml:4" and "min_score 150 is more than the" in err.what and "lower min_score" in err.fix
    err = error("id: t\ntitle: T\npass: {all_requried: true}\nitems:\n" + gap)
    assert "unknown key 'all_requried' (did you mean 'all_required'?)" in err.what


@pytest.mark.parametrize("pattern, what, fix", [
    ("/home/me/S5.ipynb", "'/home/me/S5.ipynb' is not a path inside the hand-in", "e.g. notebook: S5/*.ipynb"),
    ("../S5.ipynb", "'../S5.ipynb' is not a path inside the hand-in", "a glob relative to the hand-in's folder"),
    ("S5/*.py", "'S5/*.py' can match no notebook: it matches paths, and a notebook's ends in .ipynb",
     "end it with .ipynb, e.g. notebook: S5/*.ipynb"),
    ("S5/final", "'S5/final' can match no notebook: it matches paths, and a notebook's ends in .ipynb",
     "e.g. notebook: S5/final.ipynb"),
])
def test_the_notebook_pattern_is_a_glob_for_notebooks_in_the_hand_in(pattern, what, fix):
    assert load(HEAD + ITEM + "    fact: eval.accuracy\n    ge: 99\n").notebook is None
    assert load(f"notebook: 'S5/*.ipynb'\n{HEAD}{ITEM}    fact: eval.accuracy\n    ge: 99\n").notebook == "S5/*.ipynb"
    err = error(f"notebook: '{pattern}'\n{HEAD}{ITEM}    fact: eval.accuracy\n    ge: 99\n")
    assert err.where == "r.yaml:1" and err.what == f"notebook: {what}"
    assert fix in err.fix
