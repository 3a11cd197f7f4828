"""Structure facts of a layer table (grader.arch.structure): pure, so written with specs, no torch."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grader.arch.engine import Shape, analyze
from grader.arch.layers import normalize
from grader.arch.spec import parse_line
from grader.arch.structure import structure_facts
from grader.facts import Facts

COURSE = ("28x28x1 > (c3:16 nobias > relu > bn > drop0.1) > (c3:32 nobias > relu > bn > drop0.1) > c1:10 nobias > mp2"
          " > (c3:16 nobias > relu > bn > drop0.1)*3 > c3:16 p1 nobias > relu > bn > drop0.1 > ap6 > c1:10 nobias"
          " > flat > log_softmax")


def facts(spec: str, **counts):
    return structure_facts(parse_line(spec).table(), **counts)


def test_course_network_facts():
    f = facts(COURSE)
    assert (f.params.trainable, f.params.total, f.buffers) == (13_808, 13_808, 230)
    assert f.layers.model_dump() == {"linear": 0, "conv": 8, "conv1x1": 2, "maxpool": 1, "batchnorm": 6, "dropout": 6}
    assert f.activations == ["log_softmax", "relu"]
    assert f.gap is True  # AvgPool2d(6) on the 6x6 map
    assert f.transitions == 1  # c1:10 right before mp2
    assert f.layers_after_last_maxpool == 5  # four 3x3 and the final 1x1
    assert (f.rf.final, f.rf.covers_input) == (22, False)  # RF of the 6x6 map feeding the average
    assert (f.input_shape, f.output_shape, f.branches) == ([1, 28, 28], [10], False)
    assert len(f.table) == 30 and f.table[9]["label"] == "maxpool 2x2" and f.table[9]["rf"] == 6


def test_facts_serialise_under_model():
    data = Facts(model=facts(COURSE)).to_json()
    assert data["model"]["params"]["trainable"] == 13_808
    assert data["model"]["table"][0]["out"] == "26x26x16"


def test_module_counts_override_the_table():
    f = facts("28x28x1 > c3:8 > gap", trainable=100, total=120, buffers=7)
    assert (f.params.trainable, f.params.total, f.buffers) == (100, 120, 7)
    assert facts("28x28x1 > c3:8 > gap", trainable=100).params.total == 100  # total defaults to trainable
    assert facts("28x28x1 > c3:8 > gap").params.trainable == 80


# ---------------------------------------------------------------- GAP


@pytest.mark.parametrize("spec, gap", [
    ("28x28x1 > c3:8 > mp2 > gap", True),
    ("28x28x1 > c3:8 > mp2 > ap13", True),  # the window is the whole 13x13 map
    ("7x7x8 > ap8 p1", True),  # one 8x8 window from -1 reaches pixel 6: the whole map
    ("28x28x1 > c3:8 > mp2 > ap4 > flat", False),  # 3x3 windows of 4x4
    ("5x5x8 > ap4", False),  # 1x1 out, but the window misses the last row and column
    ("28x28x1 > c3:8 > flat > fc:10", False),
])
def test_gap_needs_an_average_over_the_whole_map(spec, gap):
    assert facts(spec).gap is gap


# ---------------------------------------------------------------- transitions


@pytest.mark.parametrize("spec, count", [
    ("28x28x1 > c3:16 > mp2 > c1:8", 1),  # max-pool then 1x1
    ("28x28x1 > c3:16 > c1:8 > mp2", 1),  # 1x1 then max-pool
    ("28x28x1 > c3:16 > mp2 > bn > relu > drop0.1 > c1:8 > bn > relu", 1),  # only bn / act / dropout between
    ("28x28x1 > c3:16 > c1:8 > relu > bn > mp2 > c1:4", 2),
    ("28x28x1 > c3:8 > mp2 > c1:16", 0),  # a 1x1 that adds channels is not a transition
    ("28x28x1 > c3:16 > mp2 > c3:16 > c1:8", 0),  # a 3x3 between: not next to the pool
    ("28x28x1 > c3:16 > ap2 > c1:8", 0),  # an average pool is not a max-pool
    ("28x28x1 > c3:16 > c1:8", 0),
])
def test_transitions(spec, count):
    assert facts(spec).transitions == count


def test_a_transition_is_not_found_across_a_branch():
    def conv(k, out, inputs=None):
        return replace(normalize("conv", {"k": k, "out": out}, "test"), inputs=inputs)

    pool = normalize("maxpool", {"k": 2}, "test")
    layers = [conv(3, 16), pool, conv(1, 8), conv(3, 8, inputs=(1,)),
              replace(normalize("relu", {}, "test"), inputs=(2,))]
    # the 1x1 (layer 2) follows the pool directly even though the pool also feeds a 3x3
    assert structure_facts(analyze(Shape(28, 28, 1), layers)).transitions == 1
    forked = [conv(3, 16), conv(1, 8), pool, conv(3, 8, inputs=(1,))]  # the 1x1 feeds both a pool and a 3x3
    f = structure_facts(analyze(Shape(28, 28, 1), forked))
    assert f.branches is True and f.transitions == 0


# ---------------------------------------------------------------- receptive field, layer counts, shapes


@pytest.mark.parametrize("spec, final, covers", [
    ("28x28x1 > (c3:8)*13 > gap", 27, False),
    ("28x28x1 > (c3:8 p1)*14 > gap", 29, True),
    ("28x28x1 > c3:8 > mp2 > c3:8 > flat > fc:10", 8, False),  # RF before flatten, not of the linear layer
    ("28x28x1 > c3:8 > mp2 > c3:8 > fc:10", 8, False),
    ("28x28x1 > c5:8", 5, False),  # no head: the last layer
    ("8x8x1 > c3:4 s2 > c3:4", 7, False),
    ("5x5x1 > c3:4 > c3:4", 5, True),
    ("8x5x1 > c3:4 > c3:4", 5, False),  # 5 covers the 5 columns but not the 8 rows
])
def test_final_receptive_field(spec, final, covers):
    f = facts(spec)
    assert (f.rf.final, f.rf.covers_input) == (final, covers)


def test_layers_after_last_maxpool():
    assert facts("28x28x1 > c3:8 > mp2 > c3:8 > relu > c3:8 > c1:10 > gap").layers_after_last_maxpool == 3
    assert facts("28x28x1 > c3:8 > mp2 > c3:8 > mp2 > flat > fc:10").layers_after_last_maxpool == 1
    assert facts("28x28x1 > c3:8 > c3:8 > gap").layers_after_last_maxpool == 2  # no max-pool: all of them


def test_counts_and_activations():
    f = facts("28x28x1 > c3:8 > bn > relu > drop0.05 > mp2 > c1:4 > c3x1:4 > gelu > gap > flat > fc:10 > softmax")
    assert f.layers.model_dump() == {"linear": 1, "conv": 3, "conv1x1": 1, "maxpool": 1, "batchnorm": 1, "dropout": 1}
    assert f.activations == ["gelu", "relu", "softmax"]


def test_output_shape_is_channels_first():
    assert facts("28x28x1 > c3:10").output_shape == [10, 26, 26]
    assert facts("28x28x1 > c3:10 > gap").output_shape == [10, 1, 1]
    assert facts("28x28x1 > c3:10 > gap > flat").output_shape == [10]


def test_structure_does_not_import_torch():
    code = "import sys, grader.arch.structure; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0
