"""Notebooks that carry the test set into their score (issue 16), each named after what it tries, end with no
accuracy credit, `passed: false` and a verdict that says what was found; the graph readers (grader/arch/
graph_ops.py, stored_state.py) flag nothing on honest networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from grader.arch.graph_ops import unexpected_ops
from grader.arch.stored_state import stored_state
from grader.facts import Facts
from grader.pipeline import grade_facts
from grader.rubric.load import load_rubric
from grader.rubric.score import score
from grader.settings import Options, RunLimits
from tests.fixtures.models.course_net import Net as CourseNet

FIXTURES = Path(__file__).parent / "fixtures" / "exec"


@pytest.fixture(scope="module")
def options(real_mnist_dir):
    return Options(data=str(real_mnist_dir), limits=RunLimits(wall_seconds=180, cell_seconds=60, memory_bytes=3 << 30,
                                                           max_processes=96, max_file_bytes=200 << 20,
                                                           output_bytes=2 << 20))


def graded(name: str, options: Options):
    facts = grade_facts(FIXTURES / f"{name}.ipynb", options)
    sheet = score(facts, load_rubric("mnist-s3"))
    return facts, sheet, {i.id: i for i in sheet.items}


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("name, kind, tensors", [
    ("lookup_table_in_buffers", "buffers", ["buffer `keys` 10000x32", "buffer `answers` 10000x10"]),
    ("lookup_table_in_frozen_parameters", "frozen", ["frozen parameter `keys` 10000x32",
                                                     "frozen parameter `answers` 10000x10"]),
    ("lookup_table_in_lifted_constants", "constants", ["constant `lifted_tensor_1` 10000x32",
                                                       "constant `lifted_tensor_2` 10000"]),
    # no argmax and no indexing: a softmax over the similarity to each stored image weighs the stored labels
    ("soft_lookup_in_buffers", "buffers", ["buffer `keys` 10000x32", "buffer `answers` 10000x10"]),
])
def test_a_table_of_the_test_set_is_found_and_not_credited(name, kind, tensors, options):
    facts, sheet, items = graded(name, options)
    assert facts.verdict.kind == "lookup" and facts.eval.accuracy is None, facts.verdict.message
    message = facts.verdict.message
    assert "looks answers up" in message and "It scored 100.00% on the test images, which is not credited" in message
    assert all(t in message for t in tensors), message  # the instructor reads which tensors, and how big
    assert facts.model.ops.unexpected and facts.model.stored.trainable == 330  # 160 conv + 170 linear, silenced
    flagged = facts.model.stored.flagged
    assert getattr(facts.model.stored, kind) > 100_000 and flagged[0] == f"{tensors[0]} (320,000 numbers)"
    assert all(any(line.startswith(t) for line in flagged) for t in tensors), flagged
    assert items["accuracy"].points == 0 and items["no-lookup"].status == "failed" and sheet.passed is False
    assert "looks answers up" in items["no-lookup"].feedback


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("name, reason", [
    ("lookup_refuses_export", "torch.export: RuntimeError: no tracing, please"),
    # refuses torch.export only: TorchScript would trace the table along, but there is no TorchScript fallback
    ("lookup_table_behind_torchscript", "torch.export: RuntimeError: no export, please"),
])
def test_a_model_that_refuses_export_is_not_measured_in_the_students_process(name, reason, options):
    facts, sheet, items = graded(name, options)
    assert facts.verdict.kind == "not_exportable", facts.verdict.message
    assert facts.eval.accuracy is None and facts.eval.path is None
    assert "torch.export could not capture the model" in facts.verdict.message
    assert "TorchScript" not in facts.verdict.message and "torch.jit" not in facts.verdict.message
    assert reason in facts.verdict.message  # the reasons, the dynamic and the pinned batch
    assert "torch.export.export(model, (torch.zeros(2, 1, 28, 28),))" in facts.verdict.message  # what to change
    assert items["accuracy"].points == 0 and items["accuracy"].status == "not_measured" and sheet.passed is False
    assert "torch.export could not capture the model" in items["accuracy"].evidence


@pytest.mark.usefixtures("bwrap")
def test_a_transform_that_marks_the_label_is_not_replayed(options):
    facts, sheet, items = graded("label_marking_transform", options)
    # the grader made the inputs itself: the mark is not there, and the model answers 0 for every digit
    assert facts.verdict.kind == "ok", facts.verdict.message
    assert facts.eval.accuracy == pytest.approx(9.8)
    assert "the test transform of the test dataset is not a per-pixel affine map" in facts.verdict.message
    assert "and `Lambda` is outside the transforms the grader replays (ToTensor, Normalize," in facts.verdict.message
    assert "Give the test set only transforms from ToTensor, Normalize, Resize," in facts.verdict.message
    assert items["accuracy"].points == 0 and sheet.passed is False


def _export(module: nn.Module) -> torch.export.ExportedProgram:
    return torch.export.export(module.eval(), (torch.zeros(2, 1, 28, 28),), strict=False)


def test_an_honest_course_net_has_no_unexpected_ops_and_its_bn_statistics_apart():
    program = _export(CourseNet())
    stored = stored_state(program)
    assert unexpected_ops(program) == []
    assert stored.trainable == sum(p.numel() for p in CourseNet().parameters())
    assert stored.bn_stats == 2 * (5 * 16 + 32) + 6 and stored.buffers == 0  # 5 BN(16), 1 BN(32): mean, var, counter
    assert stored.learned == stored.trainable and stored.carried == 0 and stored.flagged == []


class _GlobalMaxPool(nn.Module):
    """Global max pooling, a pooling layer (whose indices nothing reads)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 10, 3)
        self.register_buffer("mean", torch.tensor(0.1307))  # a small honest buffer: within the allowance

    def forward(self, x):
        return F.adaptive_max_pool2d(self.conv(x - self.mean), 1).flatten(1)


class _MaxOverDim(_GlobalMaxPool):
    """The same maximum through max(dim): an operator that also finds the best of a row of similarities."""

    def forward(self, x):
        return self.conv(x - self.mean).flatten(2).max(2)[0]


def test_max_pooling_and_a_small_buffer_are_not_flagged_and_a_max_over_a_dim_is():
    program = _export(_GlobalMaxPool())
    stored = stored_state(program)
    assert unexpected_ops(program) == [] and stored.buffers == 1 and stored.flagged == []
    assert unexpected_ops(_export(_MaxOverDim())) == [
        "a search among values (the largest, the smallest, an order) at node `max_1` (`aten.max.dim`), reading the "
        "image"]


class _FrozenBackbone(nn.Module):
    """A frozen layer beyond the allowance: listed for the instructor, though no operator is a lookup."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Conv2d(1, 64, 5)
        self.frozen.requires_grad_(False)
        self.head = nn.Conv2d(64, 10, 1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.head(F.relu(self.frozen(x))), 1).flatten(1)


def test_frozen_parameters_over_the_allowance_are_listed_by_name():
    stored = stored_state(_export(_FrozenBackbone()))
    assert stored.frozen == 64 * 25 + 64 and stored.learned == stored.trainable + stored.frozen
    assert stored.flagged == ["frozen parameter `frozen.weight` 64x1x5x5 (1,600 numbers)",
                              "frozen parameter `frozen.bias` 64 (64 numbers)"]


class _Lookups(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("keys", torch.randn(100, 784))
        self.register_buffer("labels", torch.randn(100, 10))

    def forward(self, x):
        flat = x.flatten(1)
        near = (flat @ self.keys.T).argmax(1)
        exact = (flat[:, :1] == 0.5).float()
        return self.labels[near] + torch.sort(flat[:, :10], 1).values + exact


def test_each_lookup_shape_is_named_with_its_node_and_table():
    found = unexpected_ops(_export(_Lookups()))
    assert found == [
        "a search among values (the largest, the smallest, an order) at node `argmax` (`aten.argmax.default`), "
        "reading the image, giving int64 values",
        "a comparison at node `eq` (`aten.eq.Scalar`), reading the image, giving bool values",
        "indexing by computed positions at node `index` (`aten.index.Tensor`), reading the image and the stored "
        "`labels` 100x10",
        "a search among values (the largest, the smallest, an order) at node `sort` (`aten.sort.default`), reading "
        "the image",
    ]


def _stored_facts(**stored) -> Facts:
    return Facts.model_validate({"model": {"params": {"trainable": stored["trainable"]}, "stored": stored,
                                           "ops": {"unexpected": []}},
                                 "verdict": {"kind": "ok", "message": "the notebook ran and its model was captured"}})


def test_the_report_says_which_count_the_budget_uses_and_lists_carried_tensors():
    from grader.report import render_html, render_markdown
    from tests.test_report_markdown import _table

    flagged = ["buffer `keys` 10000x32 (320,000 numbers)", "buffer `answers` 10000x10 (100,000 numbers)"]
    facts = _stored_facts(trainable=330, frozen=0, buffers=420_000, bn_stats=0, constants=0, learned=420_330,
                          carried=420_000, flagged=flagged)
    sheet = score(facts, load_rubric("mnist-s3"))
    assert {i.id: i for i in sheet.items}["params"].feedback.startswith(
        "420,330 learned numbers is over the 20,000 budget (330 trainable parameters and 420,000 other stored")
    md = render_markdown(facts, sheet, student="eve")
    rows = {row[0]: row for row in _table(md, "| Fact |")}
    assert rows["Trainable parameters"][1:] == ["330", ""]
    assert rows["Learned numbers"][1:] == ["420,330", "trainable 330 + frozen 0 + buffers 420,000 + constants 0; "
                                           "batch-norm running statistics 0, not counted; the budget (`params`) "
                                           "counts this"]
    line = next(li for li in md.splitlines() if li.startswith("**Stored state:**"))
    assert "stores 420,000 numbers, over the 1,000 a CNN needs: buffer `keys` 10000x32 (320,000 numbers); " in line
    assert "Check what these tensors hold" in line
    assert "<b>Stored state:</b> Besides its trainable parameters" in render_html(facts, sheet, student="eve")


def test_an_honest_model_has_no_stored_state_line():
    from grader.report import render_markdown

    facts = _stored_facts(trainable=6434, frozen=0, buffers=0, bn_stats=118, constants=0, learned=6434, carried=0,
                          flagged=[])
    sheet = score(facts, load_rubric("mnist-s3"))
    items = {i.id: i for i in sheet.items}
    assert items["params"].status == "passed" and items["params"].feedback == (
        "6,434 learned numbers, within the 20,000 budget: 6,434 trainable parameters; batch-norm running statistics "
        "are not counted.")
    md = render_markdown(facts, sheet, student="ann")
    assert "Stored state" not in md and "batch-norm running statistics 118, not counted" in md


class _SoftLookup(nn.Module):
    """softmax(similarity to every stored row) @ stored answers: a lookup made of operators a CNN also uses."""

    def __init__(self, rows: int = 1200):
        super().__init__()
        self.register_buffer("keys", torch.randn(rows, 16))
        self.register_buffer("answers", torch.randn(rows, 10))

    def forward(self, x):
        return F.softmax(x.flatten(1)[:, :16] @ self.keys.T, dim=1) @ self.answers


class _AttentionPool(nn.Module):
    """A learned query attends over the 784 positions of a feature map, then a 1024-wide linear layer: no lookup,
    but no course CNN either (einsum, a softmax over 784 entries)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1024, 3, padding=1)
        self.query = nn.Parameter(torch.randn(1024))
        self.fc = nn.Linear(1024, 10)

    def forward(self, x):
        maps = self.conv(x).flatten(2)  # (N, 1024, 784)
        weights = F.softmax(torch.einsum("c,ncp->np", self.query, maps), dim=1)
        return F.log_softmax(self.fc(torch.einsum("np,ncp->nc", weights, maps)), dim=1)


def test_a_soft_lookup_is_found_and_so_is_any_softmax_but_the_classifiers():
    found = unexpected_ops(_export(_SoftLookup()))
    assert found == ["a softmax over 1,200 entries (a classifier's spans its 10 classes) at node `softmax` "
                     "(`aten.softmax.int`), reading the image"]
    assert [line.split(" at node")[0] for line in unexpected_ops(_export(_SoftLookup(rows=900)))] == [
        "a softmax over 900 entries (a classifier's spans its 10 classes)"]
    assert [line.split(" at node")[0] for line in unexpected_ops(_export(_AttentionPool()))] == [
        "an operator outside those a CNN is made of",
        "a softmax over 784 entries (a classifier's spans its 10 classes)",
        "an operator outside those a CNN is made of"]  # einsum, the attention map, einsum
