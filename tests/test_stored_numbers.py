"""Stored numbers counted honestly (issue 20): weights hidden as batch-norm statistics, literal numbers written
into the graph, and wide or integer dtypes all count as learned numbers (grader/arch/stored_state.py), each
model exported the way the harness exports a student's."""

from __future__ import annotations

import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from grader.arch.graph_ops import unexpected_ops
from grader.arch.stored_state import stored_state
from grader.facts import Facts
from grader.rubric.load import load_rubric
from grader.rubric.score import score
from tests.exported import exported
from tests.fixtures.models.course_net import Net as CourseNet

HIDDEN = 784 * 71  # 55,664 numbers: the attack hid 55,356


class WeightsHiddenAsBnStatistics(nn.Module):
    """The issue's attack: a buffer read by a do-nothing batch norm as its running mean, and by `forward` as the
    weights of a linear map. Only operators a CNN uses."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.register_buffer("table", torch.randn(HIDDEN))
        self.register_buffer("spread", torch.ones(HIDDEN))

    def forward(self, x):
        flat = x.flatten(1)
        wide = flat[:, :1].expand(-1, HIDDEN)
        unused = F.batch_norm(wide, self.table, self.spread, training=False)  # makes `table` look like statistics
        scores = flat @ self.table.view(784, 71)[:, :10]
        return scores + unused[:, :10] * 0 + self.conv(x).mean((1, 2, 3))[:, None] * 0


class StatisticsOfStoredValues(nn.Module):
    """A batch norm over a stored tensor, not over the image: its statistics are numbers like any other."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, 600))
        self.norm = nn.BatchNorm1d(600)

    def forward(self, x):
        return (x.flatten(1)[:, :600] * self.norm(self.weight)).mean(1, keepdim=True).expand(-1, 10)


class BatchNormWithoutWeight(nn.Module):
    """`affine=False`: no learned weight of the statistics' size, so they count (2 x 16 numbers, and a counter)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3)
        self.bn = nn.BatchNorm2d(16, affine=False)
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x):
        return F.log_softmax(self.head(F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 1)).flatten(1), dim=1)


def _budget(stored):
    facts = Facts.model_validate({"model": {"params": {"trainable": stored.trainable}, "stored": stored.model_dump(),
                                            "ops": {"unexpected": []}},
                                  "verdict": {"kind": "ok", "message": "the notebook ran and its model was captured"}})
    return {i.id: i for i in score(facts, load_rubric("mnist-s3")).items}["params"]


def test_weights_hidden_as_batch_norm_statistics_count_and_fail_the_budget():
    program = exported(WeightsHiddenAsBnStatistics())
    stored = stored_state(program)
    assert unexpected_ops(program) == []  # every operator is a CNN's: the count is what catches it
    assert stored.bn_stats == 0 and stored.buffers == 2 * HIDDEN  # `spread` too: its batch norm has no weight
    assert stored.literals == 2 and stored.learned == 40 + 2 * HIDDEN + 2 and stored.trainable == 40  # [:, :10] twice
    assert stored.flagged == ["buffer `table` 55664 (55,664 numbers)", "buffer `spread` 55664 (55,664 numbers)",
                              "literal numbers written into the graph (2: 10 at `slice_2`, 10 at `slice_3`)"]
    item = _budget(stored)
    assert item.status == "failed" and item.feedback.startswith(
        "111,370 learned numbers is over the 20,000 budget (40 trainable parameters and 111,330 other stored numbers")


def test_a_batch_norm_over_stored_values_is_no_exemption():
    stored = stored_state(exported(StatisticsOfStoredValues()))
    assert stored.bn_stats == 0 and stored.buffers == 2 * 600 + 2  # mean, variance, and the int64 counter (2)
    # the weight, the norm's own weight and bias, its statistics, and the 600 of [:, :600]
    assert stored.learned == 600 + 2 * 600 + 2 * 600 + 2 + 1 and stored.literals == 1
    assert stored.flagged[:2] == ["buffer `norm.running_mean` 600 (600 numbers)",
                                  "buffer `norm.running_var` 600 (600 numbers)"]
    assert stored.flagged[2] == "buffer `norm.num_batches_tracked` scalar (1 number of int64, counted as 2)"


def test_statistics_without_their_layers_weight_count_and_a_course_nets_do_not():
    stored = stored_state(exported(BatchNormWithoutWeight()))
    assert stored.bn_stats == 0 and stored.buffers == 2 * 16 + 2 and stored.learned == stored.trainable + 34
    net = CourseNet()
    stored = stored_state(exported(net))
    assert stored.bn_stats == sum(b.numel() for b in net.buffers()) == 2 * (5 * 16 + 32) + 6
    assert stored.learned == stored.trainable == sum(p.numel() for p in net.parameters()) and stored.buffers == 0


WEIGHTS = [[random.Random(c * 100 + j).uniform(-1, 1) for j in range(49)] for c in range(10)]


class LiteralScalars(nn.Module):
    """A linear classifier on the 7x7 average-pooled image whose 490 weights and 10 biases are written into
    `forward` as Python numbers: no parameter, no buffer. And a scalar tensor made in `forward`."""

    def forward(self, x):
        pixels = F.avg_pool2d(x, 4).flatten(1)
        columns = [pixels[:, j] for j in range(49)]
        scores = []
        for c in range(10):
            score = columns[0] * WEIGHTS[c][0]
            for j in range(1, 49):
                score = score + columns[j] * WEIGHTS[c][j]
            scores.append((score + (c + 2) / 13).unsqueeze(1))
        return torch.cat(scores, 1) * torch.tensor(0.37)


def test_literal_numbers_in_the_graph_are_counted_one_each():
    program = exported(LiteralScalars())
    stored = stored_state(program)
    assert unexpected_ops(program) == []
    # 490 weights, 10 biases, the indices 2..48 of 47 selects (0 and 1 carry nothing); the scalar tensor is a constant
    assert stored.literals == 490 + 10 + 47 and stored.constants == stored.literals + 1
    assert stored.learned == stored.carried == 548 and stored.trainable == 0 and stored.flagged == []


def test_literal_numbers_over_the_allowance_are_listed():
    class Wider(LiteralScalars):  # the same, twice over, and 0.5: 1,095 literal numbers
        def forward(self, x):
            return super().forward(x) + super().forward(x * 0.5)

    stored = stored_state(exported(Wider()))
    assert stored.literals == 2 * 547 + 1 and stored.constants == stored.literals + 2
    assert stored.flagged == ["literal numbers written into the graph (1,095: 2 at `select_2`, 3 at `select_3`, 4 at "
                              "`select_4`, ...)", "constant `lifted_tensor_0` scalar (1 number)",
                              "constant `lifted_tensor_1` scalar (1 number)"]


class WideAndIntegerTables(nn.Module):
    """An int64 table of answers and a float64 buffer: 8 bytes each, so each number counts as two."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.randint(0, 10, (830,)))
        self.register_buffer("wide", torch.randn(100, dtype=torch.float64))
        self.register_buffer("small", torch.randint(0, 255, (40,), dtype=torch.uint8))
        self.conv = nn.Conv2d(1, 10, 28)

    def forward(self, x):
        base = self.conv(x).flatten(1)
        return base + (x.flatten(1)[:, :100] * self.wide.float()).mean(1, keepdim=True) + self.table[:10].float() + \
            self.small[:10].float()


def test_wide_and_integer_dtypes_count_their_bytes():
    stored = stored_state(exported(WideAndIntegerTables()))
    assert stored.buffers == 830 * 2 + 100 * 2 + 40  # uint8: one each, never less than a number
    assert stored.literals == 3 and stored.learned == 7850 + 1900 + 3  # and the bounds of [:, :100], [:10], [:10]
    assert stored.flagged == ["buffer `table` 830 (830 numbers of int64, counted as 1,660)",
                              "buffer `wide` 100 (100 numbers of float64, counted as 200)",
                              "buffer `small` 40 (40 numbers of uint8)",
                              "literal numbers written into the graph (3: 100 at `slice_1`, 10 at `slice_2`, 10 at "
                              "`slice_3`)"]


class SettingsAsNumbers(nn.Module):
    """Layer settings that scale values, chosen by the student: a leaky ReLU's slope, an eps, an average pool's
    divisor. At PyTorch's defaults (and ReLU6's 6) they carry nothing of the student's."""

    def __init__(self, slope=0.37, eps=0.5, divisor=3):
        super().__init__()
        self.conv = nn.Conv2d(1, 10, 3)
        self.bn = nn.BatchNorm2d(10, eps=eps)
        self.slope, self.divisor = slope, divisor

    def forward(self, x):
        x = F.leaky_relu(self.bn(self.conv(x)), self.slope)
        x = F.avg_pool2d(F.relu6(x), 26, divisor_override=self.divisor)
        return F.log_softmax(F.hardtanh(x.flatten(1), 0.0, 6.0), dim=1)


def test_layer_settings_that_scale_values_count_when_the_student_chose_them():
    stored = stored_state(exported(SettingsAsNumbers()))
    assert stored.literals == 3 and stored.learned == stored.trainable + 3
    defaults = stored_state(exported(SettingsAsNumbers(slope=0.01, eps=1e-5, divisor=None)))
    assert defaults.literals == 0 and defaults.learned == defaults.trainable


class OneWeightForManyBatchNorms(nn.Module):
    """Many batch norms share one weight, each with statistics of its own: one counted weight vouching for all."""

    def __init__(self, layers=8, width=2000):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        for i in range(layers):
            self.register_buffer(f"mean{i}", torch.randn(width))
            self.register_buffer(f"var{i}", torch.rand(width) + 0.5)
        self.layers, self.width = layers, width

    def forward(self, x):
        wide = x.flatten(1)[:, :1].expand(-1, self.width)
        out = [F.batch_norm(wide, getattr(self, f"mean{i}"), getattr(self, f"var{i}"), self.weight)
               for i in range(self.layers)]
        return torch.cat(out, 1)[:, :10]


def test_statistics_vouched_for_by_a_shared_weight_count():
    stored = stored_state(exported(OneWeightForManyBatchNorms()))
    assert stored.bn_stats == 0 and stored.buffers == 8 * 2 * 2000 and stored.trainable == 2000
    assert stored.learned == 2000 + 32_000 + 1  # and the 10 of [:, :10]
