"""1x1 transitions in the shapes students write (issue 14): a reducing 1x1 separated from the max-pool by
other 1x1 convolutions, BN, activations or dropout counts, and the facts say at which layer."""

from __future__ import annotations

import pytest

from grader.arch.spec import parse_line
from grader.arch.structure import structure_facts


def facts(spec: str):
    return structure_facts(parse_line(spec).table())


@pytest.mark.parametrize("spec, count, rows", [
    # max-pool, a 1x1 keeping 32 channels, then a 1x1 from 32 to 16: the second 1x1 is the transition
    ("28x28x1 > c3:16 > c3:32 > mp2 > c1:32 > bn > relu > c1:16 > c3:16", 1, [7]),
    # the same with dropout between, as notebooks write it
    ("28x28x1 > c3:32 > mp2 > c1:32 > relu > bn > drop0.05 > c1:16 > relu > c3:16", 1, [7]),
    # squeeze twice before the pool: both 1x1s cut channels and reach the pool through 1x1s only
    ("28x28x1 > c3:32 > c1:16 > c1:8 > mp2 > c3:8", 2, [2, 3]),
    # a 3x3 between the pool and the reducing 1x1 still breaks the block
    ("28x28x1 > c3:32 > mp2 > c1:32 > c3:32 > c1:16", 0, []),
    # only 1x1s that keep or add channels: no transition
    ("28x28x1 > c3:16 > mp2 > c1:16 > c1:32", 0, []),
])
def test_a_reducing_1x1_behind_other_1x1s_is_a_transition_at_its_own_layer(spec, count, rows):
    f = facts(spec)
    assert f.transitions == count
    assert f.transition_layers == rows
    for row in rows:  # the index points at a 1x1 convolution of the layer table the report shows
        assert f.table[row - 1]["index"] == row and f.table[row - 1]["kind"] == "conv"
