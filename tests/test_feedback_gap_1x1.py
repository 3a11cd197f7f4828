"""Feedback that follows the code the student wrote: an average pool on a 1x1 map is not GAP, and the advice says
where it belongs instead of telling the student to add the `nn.AdaptiveAvgPool2d(1)` they already have.

Each model is a real torch module, exported and saved as the grader's export is, then read back by the structure
reader and scored with the shipped rubrics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grader.arch.structure import structure_facts
from grader.arch.torch_graph import table_from_exported
from grader.facts import Facts, VerdictFacts
from grader.rubric.load import load_rubric
from grader.rubric.score import score


def _body(last: nn.Module) -> nn.Sequential:
    """28x28 -> 26 -> 13 (max-pool) -> 11 -> 5 (max-pool) -> 3, then `last`."""
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(16, 16, 3), nn.ReLU(), last)


class PoolOn1x1(nn.Module):
    """The course mistake: the convolutions end on a 1x1 map, and the 'GAP' after them averages one pixel."""

    def __init__(self):
        super().__init__()
        self.features = _body(nn.Conv2d(16, 10, 3))  # 3x3 -> 1x1
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return torch.log_softmax(self.gap(self.features(x)).view(-1, 10), dim=1)


class MeanOn1x1(PoolOn1x1):
    def forward(self, x):
        return torch.log_softmax(self.features(x).mean((2, 3)), dim=1)


class FlattenOn1x1(PoolOn1x1):
    def forward(self, x):
        return torch.log_softmax(self.features(x).view(-1, 10), dim=1)


class RealGap(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = _body(nn.Conv2d(16, 10, 1))  # 3x3x10
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return torch.log_softmax(self.gap(self.features(x)).view(-1, 10), dim=1)


def measured(module: nn.Module, tmp_path) -> Facts:
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(module.eval(), (torch.zeros(1, 1, 28, 28),)), path)
    model = structure_facts(table_from_exported(str(path)))
    return Facts(model=model, verdict=VerdictFacts(kind="ok", message="ran every cell"))


def gap_item(facts: Facts, rubric: str):
    return next(i for i in score(facts, load_rubric(rubric)).items if i.id == "gap")


@pytest.mark.parametrize("rubric", ["mnist-s4", "mnist-s5"])
def test_adaptive_pool_on_a_1x1_map_is_named_and_moved_not_added(tmp_path, rubric):
    facts = measured(PoolOn1x1(), tmp_path)
    assert facts.model.gap is False and facts.model.avgpool_on_1x1 == [10]
    assert facts.model.table[9]["name"] == "gap" and facts.model.table[9]["in"] == "1x1x10"
    item = gap_item(facts, rubric)
    assert item.status == "failed"
    assert item.feedback == ("Your average pool `gap` (layer 10) runs on a 1x1 map, so it averages nothing; put it "
                             "where the map is larger (e.g. after the last 3x3 block, on the 5x5 or 7x7 map).")
    assert "add" not in item.feedback.lower()


def test_a_mean_over_a_1x1_map_is_not_gap_either(tmp_path):
    facts = measured(MeanOn1x1(), tmp_path)
    assert facts.model.gap is False and facts.model.avgpool_on_1x1 == [10]
    assert "runs on a 1x1 map, so it averages nothing" in gap_item(facts, "mnist-s4").feedback
    assert facts.model.rf.layer == 9  # the RF belongs to the last convolution, not to the empty average


def test_convolutions_that_end_on_1x1_are_told_to_stop_earlier(tmp_path):
    facts = measured(FlattenOn1x1(), tmp_path)
    assert facts.model.gap is False and facts.model.avgpool_on_1x1 == []
    assert gap_item(facts, "mnist-s4").feedback == (
        "Your convolutions shrink the map to 1x1 (layer 9), so there is nothing left to average: stop them at a "
        "larger map (e.g. 5x5 or 7x7) and average it (nn.AdaptiveAvgPool2d(1)).")


def test_gap_on_a_larger_map_passes(tmp_path):
    facts = measured(RealGap(), tmp_path)
    assert facts.model.gap is True and facts.model.avgpool_on_1x1 == []
    assert gap_item(facts, "mnist-s4").status == "passed"


def _transition_feedback(**layers) -> str:
    facts = Facts.model_validate({"model": {"layers": layers, "transitions": 0},
                                  "verdict": {"kind": "ok", "message": "ran every cell"}})
    return next(i for i in score(facts, load_rubric("mnist-s4")).items if i.id == "transition").feedback


def test_transition_advice_follows_what_the_model_has():
    assert _transition_feedback(maxpool=2, conv1x1=1).startswith(
        "Your model has 2 max-pools and 1 1x1 convolution, but no 1x1 next to a max-pool cuts channels")
    assert _transition_feedback(maxpool=1, conv1x1=0).startswith("No 1x1 convolution next to your 1 max-pool")
    assert _transition_feedback(maxpool=0, conv1x1=0).startswith("No max-pool next to a channel-reducing 1x1")
