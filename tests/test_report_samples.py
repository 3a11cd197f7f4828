"""Hand-built facts and score sheets the report tests render (and checks that they are what they claim).

- `passing()`: a student whose course-style network ran, with the full layer table
  from the engine, measured accuracy, confusion and misclassified images, a partial
  item and a hidden item.
- `crashed()`: a student whose notebook crashed in cell 4: nothing measured but the
  static facts; the verdict message carries a script-injection attempt.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from grader.arch.spec import parse_line
from grader.data import load_mnist
from grader.evaluate.metrics import metrics
from grader.facts import (
    ClaimsFacts,
    Facts,
    LayerCounts,
    ModelFacts,
    NotebookFacts,
    ParamFacts,
    RfFacts,
    TrainFacts,
    VerdictFacts,
)
from grader.rubric.sheet import ItemResult, ScoreSheet

COURSE_NET = ("28x28x1 > (c3:8 nobias > bn > relu)*2 > mp2 > c1:8 nobias > (c3:16 nobias > bn > relu)*3"
              " > c3:10 nobias > gap > logsoftmax")
INJECTION = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@lru_cache(maxsize=2)  # read-only for every test: drawing never writes to the arrays
def eval_arrays(real: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, predictions) for 10,000 test images: the real MNIST test set where asked and present.

    Predictions are the labels with 59 mistakes spread over the digits (99.41%).
    """
    if real and REAL_MNIST.is_dir():
        split = load_mnist(REAL_MNIST, "test")
        images, labels = split.images, split.labels.astype(np.int64)
    else:
        rng = np.random.default_rng(0)
        labels = np.arange(10_000) % 10
        images = (rng.random((10_000, 28, 28)) * 255).astype(np.uint8)
    predictions = labels.copy()
    wrong = np.random.default_rng(1).choice(len(labels), 59, replace=False)
    predictions[wrong] = (labels[wrong] + 1 + wrong % 3) % 10
    return images, labels, predictions


def _item(id, title, fact, value, points, max_points, status, evidence, feedback="", **extra) -> ItemResult:
    return ItemResult(id=id, title=title, fact=fact, value=value, points=points, max_points=max_points,
                      status=status, evidence=evidence, feedback=feedback, **extra)


def passing() -> tuple[Facts, ScoreSheet]:
    table = parse_line(COURSE_NET).table()
    _, labels, predictions = eval_arrays()
    facts = Facts(
        notebook=NotebookFacts(code_cells=9, markdown_cells=3, comment_coverage=8 / 9, uncommented_cells=[7],
                               imports=["torch", "torchvision"]),
        claims=ClaimsFacts(params=table.params, accuracy=99.45, last_accuracy=99.41, epochs=15, accuracy_gap=0.04),
        model=ModelFacts(params=ParamFacts(trainable=table.params, total=table.params), buffers=table.buffers,
                         layers=LayerCounts(linear=0, conv=8, conv1x1=1, maxpool=1, batchnorm=5, dropout=0),
                         gap=True, transitions=1, layers_after_last_maxpool=13,
                         rf=RfFacts(final=22, covers_input=False),
                         input_shape=[1, 28, 28], output_shape=[10], branches=False,
                         table=[row.as_dict() for row in table.rows]),
        train=TrainFacts(epochs=15, optimizer_steps=7035, samples_seen=900_000, seconds=312.4, device="cuda"),
        eval=metrics(predictions, labels, "export"),
        verdict=VerdictFacts(kind="ok", message="the notebook ran to the end"),
    )
    items = [
        _item("params", "Under 20,000 parameters", "model.params.trainable", table.params, 3, 3, "passed",
              f"model.params.trainable = {table.params:,}; needs < 20,000", "Well within budget.", required=True),
        _item("accuracy", "At least 99.4% test accuracy", "eval.accuracy", 99.41, 4, 4, "passed",
              "eval.accuracy = 99.41%; needs >= 99.4%", "Measured by the grader, not read from your output.",
              required=True),
        _item("gap", "Global average pooling, no Linear", "model.gap", True, 1, 1, "passed", "model.gap = true"),
        _item("rf", "Receptive field covers the digit", "model.rf.final", 22, 0.5, 1, "partial",
              "model.rf.final = 22; full marks at >= 28",
              "Your last layer sees 22x22 pixels.\nAdd one more 3x3 convolution after the transition."),
        _item("comments", "Every code cell commented", "notebook.comment_coverage", 8 / 9, 0, 1, "failed",
              "notebook.comment_coverage = 89%; uncommented: cell 7", "Say why, not what, in cell 7."),
        _item("claims", "Printed accuracy matches the measured one", "claims.accuracy_gap", 0.04, 1, 1, "passed",
              "claims.accuracy_gap = 0.04 points; allowed 0.2", visibility="hidden"),
    ]
    sheet = ScoreSheet(rubric="s5-under20k", title="Session 5: under 20k parameters, 99.4%",
                       score=sum(i.points for i in items), max_score=sum(i.max_points for i in items),
                       passed=True, items=items, verdict_kind="ok")
    return facts, sheet


def crashed() -> tuple[Facts, ScoreSheet]:
    facts = Facts(
        notebook=NotebookFacts(code_cells=6, markdown_cells=0, comment_coverage=0.5, uncommented_cells=[2, 3, 5]),
        claims=ClaimsFacts(accuracy=99.6),
        verdict=VerdictFacts(kind="crash", cell=4, message=f"cell 4 failed: NameError: {INJECTION}",
                             output_tail=f"Traceback (most recent call last):\n  File \"<cell 4>\"\n"
                                         f"NameError: name 'modle' is not defined {INJECTION}\n"),
    )
    reason = "not measured: the notebook stopped with an error in code cell 4"
    items = [
        _item("params", "Under 20,000 parameters", "model.params.trainable", None, 0, 3, "not_measured",
              reason, required=True),
        _item("accuracy", "At least 99.4% test accuracy", "eval.accuracy", None, 0, 4, "not_measured",
              reason, required=True),
        _item("comments", "Every code cell commented", "notebook.comment_coverage", 0.5, 0, 1, "failed",
              "notebook.comment_coverage = 50%", "Cells 2, 3 and 5 have no comment."),
    ]
    sheet = ScoreSheet(rubric="s5-under20k", title="Session 5: under 20k parameters, 99.4%", score=0,
                       max_score=8, passed=False, items=items, verdict_kind="crash",
                       verdict_message=facts.verdict.message)
    return facts, sheet


def test_the_passing_sample_is_the_course_network_measured():
    facts, sheet = passing()
    assert facts.model.params.trainable == sum(r["params"] for r in facts.model.table)
    assert facts.eval.accuracy == 99.41 and len(facts.eval.misclassified) == 59
    assert sheet.score == sum(i.points for i in sheet.items) and any(i.visibility == "hidden" for i in sheet.items)


def test_the_crashed_sample_measured_nothing_past_the_notebook_text():
    facts, sheet = crashed()
    assert facts.model.table is None and facts.eval.accuracy is None and facts.train.epochs is None
    assert INJECTION in facts.verdict.message and not sheet.passed
