"""Lookups of stored answers built from operators a course CNN does not use (issue 20, "Lookup shapes the
denylist misses"), each named after what it tries: exported the way the harness exports a student's model,
each leaves a line in `model.ops.unexpected` (grader/arch/graph_ops.py) that names what it found, where, and
what it reads. A non-empty list is verdict `lookup` with no accuracy credit (grader/evaluate/job.py)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from grader.arch.graph_ops import unexpected_ops
from grader.evaluate.job import lookup_message
from grader.facts import ModelFacts
from tests.exported import exported

ROWS = 830  # the size of the table the attack read (int64, 100% on the test set)


class _Hostile(nn.Module):
    """The layers a reader sees, silenced; `lookup` gives the scores."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)
        self.register_buffer("answers", torch.randn(ROWS, 10))

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean((2, 3))) * 0 + self.lookup(x)


class OneHotByComparisons(_Hostile):
    """A bucket per pixel value from >= and <=, the one-hot times a table of answers."""

    def lookup(self, x):
        level = x.flatten(1)[:, 300:301]
        edges = torch.linspace(0, 1, ROWS + 1)
        one_hot = ((level >= edges[:-1]) & (level <= edges[1:])).float()
        return one_hot @ self.answers


class OneHotTimesTable(_Hostile):
    def lookup(self, x):
        return F.one_hot((x.flatten(1)[:, 300] * (ROWS - 1)).long(), ROWS).float() @ self.answers


class WhereChoosesRows(_Hostile):
    def lookup(self, x):
        return torch.where(x.flatten(1)[:, 300:301] > 0.5, self.answers[0], self.answers[1])


class ClampBuildsSteps(_Hostile):
    """clamp(k * (x - t), 0, 1): a step at each threshold, a one-hot from floating point only."""

    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.linspace(0, 1, ROWS))

    def lookup(self, x):
        up = torch.clamp((x.flatten(1)[:, 300:301] - self.steps) * 1000, 0, 1)
        return (up[:, :-1] - up[:, 1:]) @ self.answers[:-1]


class ScatterIntoOneHot(_Hostile):
    def lookup(self, x):
        index = (x.flatten(1)[:, 300:301] * (ROWS - 1)).long()
        return torch.zeros(x.shape[0], ROWS).scatter(1, index, 1.0) @ self.answers


class GridSampleReadsTable(_Hostile):
    """The table as an image, sampled at a position computed from the pixels."""

    def lookup(self, x):
        where = x.flatten(1)[:, 300:302].view(-1, 1, 1, 2) * 2 - 1
        table = self.answers.t().reshape(1, 10, ROWS, 1).expand(x.shape[0], 10, ROWS, 1)
        return F.grid_sample(table, where, align_corners=True).flatten(1)


class AmaxNearestNeighbour(_Hostile):
    """The best similarity among each class's stored images: a nearest neighbour from a max."""

    def __init__(self):
        super().__init__()
        self.register_buffer("keys", torch.randn(10 * 83, 784))

    def lookup(self, x):
        return (x.flatten(1) @ self.keys.t()).view(-1, 10, 83).amax(2)


class HandWrittenSoftmax(_Hostile):
    def __init__(self):
        super().__init__()
        self.register_buffer("keys", torch.randn(ROWS, 784))

    def lookup(self, x):
        weights = torch.exp(x.flatten(1) @ self.keys.t())
        return (weights / weights.sum(1, keepdim=True)) @ self.answers


class SoftmaxOver999(_Hostile):
    """Similarities to 999 stored images weigh their answers: made of a linear map and a softmax."""

    def __init__(self):
        super().__init__()
        self.register_buffer("keys", torch.randn(999, 784))
        self.register_buffer("answers", torch.randn(999, 10))

    def lookup(self, x):
        return F.softmax(x.flatten(1) @ self.keys.t(), dim=1) @ self.answers


class IscloseToStored(_Hostile):
    def __init__(self):
        super().__init__()
        self.register_buffer("keys", torch.randn(ROWS, 4))

    def lookup(self, x):
        same = torch.isclose(x.flatten(1)[:, None, 300:304], self.keys, atol=0.01).all(2)
        return same.float() @ self.answers


class IntegerHashOfPixels(_Hostile):
    """The issue's attack: pixels hashed with integer arithmetic into the row of an int64 table of answers."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.randint(0, 10, (ROWS,)))

    def lookup(self, x):
        pixels = (x.flatten(1)[:, 200:210] * 255).to(torch.int64)
        row = (pixels * torch.arange(1, 11)).sum(1) % ROWS
        return self.table[row].float()[:, None] * torch.ones(10)


class IndexSelectRow(_Hostile):
    def lookup(self, x):
        return self.answers.index_select(0, (x.flatten(1)[:, 300] * (ROWS - 1)).long())


class RoundsThroughIntegers(_Hostile):
    """Only allowed operators, but the pixels pass through int64 (`x.long()`) on the way: integer dataflow."""

    def lookup(self, x):
        return x.flatten(1)[:, :10].long().float()


class MaxPoolIndicesAsData(_Hostile):
    """An allowed max-pool whose int64 indices (where each maximum was) feed the scores."""

    def lookup(self, x):
        _, where = F.max_pool2d(x, 28, return_indices=True)
        return where.flatten(1).float() * torch.ones(10)


class KernelFromTheImage(_Hostile):
    """A convolution whose weights come from the image, and a product of the image with itself."""

    def lookup(self, x):
        kernel = x.mean(0, keepdim=True)[:, :, :3, :3]
        pixels = x.flatten(1)[:, :10]
        return F.conv2d(x, kernel).mean((2, 3)) + (pixels.unsqueeze(2) @ pixels.unsqueeze(1)).mean(2)


class BatchFingerprint(_Hostile):
    """The mean of the whole batch says which batch of the test set this is: images read as a group."""

    def lookup(self, x):
        return (x.flatten(1) - x.flatten(1).mean(0, keepdim=True))[:, :10]


class CountsItsCalls(_Hostile):
    """A buffer incremented on every call: the batch's number, to pick that batch's stored answers."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(1))

    def lookup(self, x):
        self.calls.add_(1)
        return x.flatten(1)[:, :10] * self.calls


def _found(module: nn.Module) -> list[str]:
    return unexpected_ops(exported(module))


def test_a_one_hot_built_from_comparisons_is_reported():
    found = _found(OneHotByComparisons())
    assert "a comparison at node `ge` (`aten.ge.Tensor`), reading the image, giving bool values" in found, found
    assert "a comparison at node `le_1` (`aten.le.Tensor`), reading the image, giving bool values" in found, found
    assert "rounding, bitwise or integer arithmetic (a hash of the pixels) at node `and_1` (`aten.__and__.Tensor`), " \
           "reading the image, giving bool values" in found, found
    assert "a tensor made inside the graph at node `linspace` (`aten.linspace.default`), reading only numbers " \
           "written into the graph" in found, found


def test_one_hot_times_a_table_is_reported():
    found = _found(OneHotTimesTable())
    assert any(line.startswith("indexing by computed positions at node `one_hot` (`aten.one_hot.default`), "
                               "reading the image") and line.endswith("giving int64 values") for line in found)
    assert "int64 values computed from the image at node `to` (`aten.to.dtype`), reading the image" in found, found


def test_where_is_reported():
    found = _found(WhereChoosesRows())
    assert any(line.startswith("a choice by a condition at node `where` (`aten.where.self`), reading the image "
                               "and the stored `answers` 830x10") for line in found), found
    assert any(line.startswith("a comparison at node `gt` (`aten.gt.Scalar`)") for line in found), found


def test_clamp_steps_are_reported():
    found = _found(ClampBuildsSteps())
    assert any(line.startswith("a clamp at node `clamp` (`aten.clamp.default`), reading the image") for line in found)


def test_scatter_is_reported():
    found = _found(ScatterIntoOneHot())
    assert any(line.startswith("a write at computed positions at node `scatter` (`aten.scatter.value`), reading "
                               "the image") for line in found), found


def test_grid_sample_is_reported():
    found = _found(GridSampleReadsTable())
    assert any(line.startswith("sampling at computed positions (grid_sample) at node `grid_sampler` "
                               "(`aten.grid_sampler.default`), reading the image and the stored `answers` 830x10")
               for line in found), found


def test_amax_over_stored_images_is_reported():
    found = _found(AmaxNearestNeighbour())
    assert any(line.startswith("a search among values (the largest, the smallest, an order) at node `amax` "
                               "(`aten.amax.default`), reading the image") for line in found), found


def test_a_hand_written_softmax_is_reported():
    found = _found(HandWrittenSoftmax())
    heads = [line.split(" (`")[0] for line in found]
    assert "arithmetic a CNN does not need (a hand-written softmax or distance) at node `exp`" in heads, found
    assert "arithmetic a CNN does not need (a hand-written softmax or distance) at node `sum_1`" in heads, found


def test_a_softmax_over_999_stored_images_is_reported():
    found = _found(SoftmaxOver999())
    assert found == ["a softmax over 999 entries (a classifier's spans its 10 classes) at node `softmax` "
                     "(`aten.softmax.int`), reading the image"]


def test_isclose_is_reported():
    found = _found(IscloseToStored())
    assert any(line.startswith("a comparison at node `isclose` (`aten.isclose.default`), reading the image and the "
                               "stored `keys` 830x4") and line.endswith("giving bool values") for line in found)


def test_an_integer_hash_of_the_pixels_is_reported():
    found = _found(IntegerHashOfPixels())
    assert "int64 values computed from the image at node `to` (`aten.to.dtype`), reading the image" in found, found
    assert "int64 values computed from the image at node `mul_2` (`aten.mul.Tensor`), reading the image" in found
    assert any(line.startswith("rounding, bitwise or integer arithmetic (a hash of the pixels) at node `remainder` "
                               "(`aten.remainder.Scalar`)") and line.endswith("giving int64 values")
               for line in found), found
    assert any(line.startswith("indexing by computed positions at node `index` (`aten.index.Tensor`), reading the "
                               "image and the stored `table` 830") for line in found), found


def test_index_select_is_reported():
    found = _found(IndexSelectRow())
    assert any(line.startswith("indexing by computed positions at node `index_select` (`aten.index_select.default`)"
                               ", reading the image and the stored `answers` 830x10") for line in found), found


def test_integer_values_on_the_way_through_allowed_operators_are_reported():
    assert _found(RoundsThroughIntegers()) == [
        "int64 values computed from the image at node `to` (`aten.to.dtype`), reading the image"]
    found = _found(MaxPoolIndicesAsData())
    assert "int64 values computed from the image at node `getitem_1` (`operator.getitem`), reading the image" in found
    assert "a tensor made inside the graph at node `ones` (`aten.ones.default`), reading only numbers written into " \
           "the graph" in found, found


def test_weights_computed_from_the_image_are_reported():
    found = _found(KernelFromTheImage())
    assert any(line.startswith("a layer whose weights are computed from the image at node `conv2d_1`")
               for line in found), found
    assert any(line.startswith("a product of two values computed from the image at node `matmul`")
               for line in found), found


def test_the_verdict_names_what_was_found_and_how_to_fix_it():
    found = _found(SoftmaxOver999())
    message = lookup_message(ModelFacts.model_validate({"ops": {"unexpected": found}}), scored=100.0)
    assert message.startswith("the exported model looks answers up instead of computing them: a softmax over 999 "
                              "entries (a classifier's spans its 10 classes) at node `softmax`")
    assert "It scored 100.00% on the test images, which is not credited" in message
    assert "compute the ten scores from the image with convolutions, pooling and linear layers" in message


def test_values_that_mix_the_images_of_a_batch_are_reported():
    assert _found(BatchFingerprint()) == [
        "values that mix the images of a batch (shape [1, 784]; each image's are [s77, ...]) at node `mean_1` "
        "(`aten.mean.dim`), reading the image"]


def test_stored_state_changed_between_batches_is_reported():
    assert _found(CountsItsCalls()) == [
        "a change to stored state, which the next batch would read, at node `add_` (`aten.add_.Tensor`), reading "
        "the stored `calls` 1"]
    decomposed = unexpected_ops(exported(CountsItsCalls()).run_decompositions())  # a handed-in core ATen export
    changes = [line for line in decomposed if "change" in line]
    assert len(changes) == 1 and changes[0].startswith("a change to the stored `calls`, which the next batch would "
                                                       "read, at node `add")  # the node's number is decomposition's
    assert changes[0].endswith("(`aten.add.Tensor`), reading the stored `calls` 1")
