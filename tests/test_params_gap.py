"""Printed versus measured parameters: `claims.params` read from the forms course notebooks print, and
`claims.params_gap` shown and flagged in the report, the rubric's feedback and `grade run`, never scored."""

from __future__ import annotations

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output
from torch import nn

from grader.cli.run_cmd import summary_lines
from grader.facts import ClaimsFacts, Facts, ModelFacts, ParamFacts, VerdictFacts, spec, with_derived
from grader.inspect.claims import find_claims
from grader.pipeline import grade_facts
from grader.report.markdown import render_markdown
from grader.report.summary import build_view
from grader.rubric.load import load_rubric
from grader.rubric.score import score
from grader.settings import Options


def printed(output: str, source: str | None = None) -> ClaimsFacts:
    return find_claims([(0, [output]) if source is None else (0, [output], source)]).facts()


# --- what a notebook printed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("output, source, count, kind", [
    ("Total params: 7,210\nTrainable params: 7,210\nNon-trainable params: 0\n", None, 7210, "trainable"),
    ("Total params: 7,210\nNon-trainable params: 64\n", None, 7210, "total"),
    ("Parameters: 7210\n", None, 7210, "total"),
    ("Model params = 7,210\n", None, 7210, "total"),
    ("The model has 7,210 trainable parameters\n", None, 7210, "trainable"),  # the bentrevett tutorials' helper
    ("7210 parameters\n", None, 7210, "total"),
    ("Total parameters: 7210\n", None, 7210, "total"),
    ("7210\n", "# count them\nprint(sum(p.numel() for p in model.parameters()))", 7210, "total"),
    ("7,210\n", "# trainable only\nprint(f'{sum(p.numel() for p in model.parameters() if p.requires_grad):,}')",
     None, None),  # an f-string around the sum: the number is bare, but the code is not a bare print of the sum
    ("7210", "# the last line's value\nsum(p.numel() for p in model.parameters() if p.requires_grad)", 7210,
     "trainable"),
    ("7210\n", "# kept, then shown\nn = sum(p.numel() for p in model.parameters())\nprint(n)", 7210, "total"),
    ("7210\n", "# keras\nprint(model.count_params())", 7210, "total"),
])
def test_parameter_counts_in_the_forms_notebooks_print(output, source, count, kind):
    claims = printed(output, source)
    assert (claims.params, claims.params_kind) == (count, kind)


@pytest.mark.parametrize("output, source", [
    ("Non-trainable params: 0\n", None),  # not a count of the model
    ("Params size (MB): 0.03\n", None),
    ("7210\n", None),  # a bare number with no code to say what it is
    ("7210\n128\n", "print(sum(p.numel() for p in model.parameters()))\nprint(len(batch))"),  # which line is it?
    ("12\n", "# the batch size\nprint(len(batch))"),
])
def test_what_is_not_a_parameter_count(output, source):
    assert printed(output, source).params is None


# --- the gap --------------------------------------------------------------------------------------------------

def derived(claims: ClaimsFacts, trainable: int | None, total: int | None) -> ClaimsFacts:
    model = ModelFacts(params=ParamFacts(trainable=trainable, total=total))
    return with_derived(Facts(claims=claims, model=model)).claims


def test_the_gap_compares_counts_of_the_same_kind():
    assert derived(ClaimsFacts(params=7210, params_kind="total"), 7042, 7042).params_gap == 168
    assert derived(ClaimsFacts(params=7042, params_kind="total"), 7042, 7042).params_gap == 0
    # Keras with batch norm: 13,808 trainable of 13,936 (the moving statistics are weights too): no false flag
    assert derived(ClaimsFacts(params=13808, params_kind="trainable"), 13808, 13936).params_gap == 0
    assert derived(ClaimsFacts(params=13936, params_kind="total"), 13808, 13936).params_gap == 0
    assert derived(ClaimsFacts(params=6000, params_kind="trainable"), 7042, 7042).params_gap == -1042
    assert derived(ClaimsFacts(), 7042, 7042).params_gap is None
    assert derived(ClaimsFacts(params=7210, params_kind="total"), None, None).params_gap is None
    assert not spec("claims.params_gap").judged_at("static")  # a static check has no measured model to compare with


def measured_facts(printed_count: int, graded: int) -> Facts:
    facts = Facts(claims=ClaimsFacts(params=printed_count, params_kind="trainable", accuracy=99.1),
                  model=ModelFacts(params=ParamFacts(trainable=graded, total=graded)),
                  verdict=VerdictFacts(kind="ok", message="the notebook ran and its model was captured"))
    facts = facts.model_copy(update={"model": facts.model.model_copy(update={"stored": facts.model.stored.model_copy(
        update={"learned": graded, "trainable": graded, "carried": 0})})})
    return with_derived(facts)


def test_the_rubric_feedback_says_it_and_the_score_does_not_change():
    rubric = load_rubric("mnist-s4")
    differs, agrees = score(measured_facts(7210, 7042), rubric), score(measured_facts(7042, 7042), rubric)
    params = next(i for i in differs.items if i.id == "params")
    assert params.feedback.endswith(
        "batch-norm running statistics are not counted. The notebook printed 7,210 trainable parameters; the model "
        "graded has 7,042 (the code handed in differs from what was run?).")
    assert next(i for i in agrees.items if i.id == "params").feedback.endswith("are not counted.")
    assert differs.score == agrees.score and [i.points for i in differs.items] == [i.points for i in agrees.items]


def test_the_report_flags_it_beside_the_measured_count():
    facts = measured_facts(7210, 7042)
    sheet = score(facts, load_rubric("mnist-s4"))
    view = build_view(facts, sheet, student="ada")
    assert "the model graded has 7,042, 168 fewer (the code handed in differs from what was run?)" in render_markdown(
        facts, sheet, student="ada")
    params = next(k for k in view.key_facts if k.fact == "model.params.trainable")
    assert params.state == "warn" and params.note.startswith(
        "the notebook printed 7,210 trainable; the model graded has 7,042, 168 fewer (the code handed in differs "
        "from what was run?)")
    same = measured_facts(7042, 7042)
    note = next(k for k in build_view(same, score(same, load_rubric("mnist-s4")), student="ada").key_facts
                if k.fact == "model.params.trainable")
    assert note.state == "neutral" and note.note == "the notebook printed 7,042"  # no rubric item reads this count


def test_a_rubric_may_read_it_and_says_why_it_is_missing():
    from grader import yamlio
    from grader.facts import GradingFacts
    from grader.rubric.load import rubric_from_yaml

    rubric = rubric_from_yaml(yamlio.loads(
        "id: t\ntitle: T\nitems:\n  - id: printed-params\n    title: T\n    fact: claims.params_gap\n"
        "    eq: 0\n    points: 1\n", "r.yaml"))
    assert score(measured_facts(7210, 7042), rubric).items[0].status == "failed"
    assert score(measured_facts(7042, 7042), rubric).items[0].status == "passed"
    unprinted = with_derived(Facts(model=ModelFacts(params=ParamFacts(trainable=7042, total=7042)),
                                   verdict=VerdictFacts(kind="ok", message="ran")))
    assert score(unprinted, rubric).items[0].evidence == (
        "not measured: the notebook's outputs show no parameter count to compare with the measured one")
    static = Facts(grading=GradingFacts(mode="static"), claims=ClaimsFacts(params=7210, params_kind="total"))
    assert score(static, rubric).items[0].status == "not_judged"


def test_grade_run_prints_it():
    line = next(x for x in summary_lines(measured_facts(7210, 7042)) if x.startswith("parameters"))
    assert line == "parameters   7,042 trainable (the notebook printed 7,210: 168 more than the model graded has)"


# --- end to end: the notebook printed the BN model's count, the model handed in has no BN -----------------------

class Net(nn.Module):
    def __init__(self, bn: bool):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3), norm(8), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3), norm(16), nn.ReLU(), nn.Conv2d(16, 10, 1),
                                      nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.log_softmax(self.features(x).flatten(1), dim=1)


@pytest.mark.usefixtures("bwrap")
def test_a_printed_count_that_is_not_the_model_handed_in_is_flagged(tmp_path, real_mnist_dir):
    ran, handed_in = Net(bn=True), Net(bn=False)
    ran_count = sum(p.numel() for p in ran.parameters())
    graded = sum(p.numel() for p in handed_in.parameters())
    assert ran_count - graded == 48  # the two BN layers' weights and biases
    cell = new_code_cell("# the model's size\nfrom torchsummary import summary\nsummary(model, (1, 28, 28))")
    cell.outputs = [new_output("stream", name="stdout", text=(
        f"Total params: {ran_count:,}\nTrainable params: {ran_count:,}\nNon-trainable params: 0\n"))]
    notebook = tmp_path / "s5.ipynb"
    nbformat.write(new_notebook(cells=[cell]), str(notebook))
    model = tmp_path / "model.pt2"
    batch = torch.export.Dim("batch", min=1, max=4096)  # what the course's export cell writes
    torch.export.save(torch.export.export(handed_in.eval(), (torch.zeros(2, 1, 28, 28),),
                                          dynamic_shapes=({0: batch},)), model)
    facts = grade_facts(notebook, Options(data=str(real_mnist_dir), mode="evaluate"), model_file=model)
    assert facts.verdict.kind == "ok", facts.verdict.message
    assert (facts.claims.params, facts.claims.params_kind, facts.model.params.trainable) == (ran_count, "trainable",
                                                                                             graded)
    assert facts.claims.params_gap == 48
    params = next(i for i in score(facts, load_rubric("mnist-s5")).items if i.id == "params")
    assert (f"The notebook printed {ran_count:,} trainable parameters; the model graded has {graded:,} "
            "(the code handed in differs from what was run?)") in params.feedback
