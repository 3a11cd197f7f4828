"""Every computed key of the shipped bank, for one fixed student, against arithmetic done by hand.

The expectations below were worked out on paper from the drawn numbers, with
the formulas of DESIGN.md: n_out = floor((n + 2p - k)/s) + 1, r_out = r_in +
(k-1)*j_in, j_out = j_in*s, parameters = k*k*c_in*c_out (+ c_out bias), batch
norm 2*C. Nothing here calls the engine. A new computed question in the bank
fails `test_every_computed_question_has_a_hand_expectation` until it gets a line.
"""

from pathlib import Path

import pytest

from grader.quiz import draw_quiz, load_bank

BANK = Path(__file__).resolve().parents[1] / "quizzes" / "cnn-basics.yaml"
STUDENT = "fixed-seed"

# 400x400x3 > c3:32 > c3:64 > c3:128 > c3:256 > c3:512 > mp2 > c1:32 > c3:32 > c3:64 > c3:128 > c3:256 > mp2
#   > c1:32 > c3:64
# sizes 398 396 394 392 390 | (390-2)//2+1 = 195 | 195 | 193 191 189 187 | (187-2)//2+1 = 93 | 93 | 91
# RF    3 5 7 9 11 | 11+1*1 = 12 (j 2) | 12 | 16 20 24 28 | 28+1*2 = 30 (j 4) | 30 | 30+2*4 = 38
#
# the mnist stack: 28x28x1 > c3:8 > bn > relu > c3:16 > bn > relu > mp2 > c1:8 > c3:16 > bn > relu
#                  > c3:16 > bn > relu > c3:16 > gap > c1:10
# sizes 26, 24, mp 12, 12, 10, 8, 6 (layer 15), gap 1;  RF 3, 5, mp 6 (j 2), 6, 10, 14, 18 (layer 15)
# params with bias: 9*1*8+8 = 80, bn 16, 9*8*16+16 = 1168, bn 32, 1*8*16+8 = 136, 9*8*16+16 = 1168, bn 32,
#                   9*16*16+16 = 2320, bn 32, 2320, 16*10+10 = 170   -> 7474
# weights only: 72 + 1152 + 128 + 1152 + 2304 + 2304 + 160 = 7272, plus batch norm 16+32+32+32 = 112 -> 7384
EXPECTED = {
    # id: (drawn params, key as displayed)
    "net400-shape-block1": ({"i": 1}, "398x398x32"),            # 400 - 3 + 1
    "net400-shape-pool1": ({}, "195x195x512"),                  # (390 - 2)//2 + 1, channels kept
    "net400-shape-1x1": ({}, "195x195x32"),                     # 1x1 keeps HxW, 32 kernels
    "net400-shape-block2": ({"i": 8}, "193x193x32"),            # 195 - 2, conv3x3 32
    "net400-shape-pool2": ({}, "93x93x256"),                    # (187 - 2)//2 + 1 after conv3x3 256
    "net400-rf-block1": ({"i": 3}, "7x7"),                      # 1 + 2 + 2 + 2
    "net400-rf-pool1": ({}, "12x12"),                           # 11 + (2-1)*1, not 22
    "net400-rf-block2": ({"i": 8}, "16x16"),                    # 12 + 0 (1x1) + 2*2
    "net400-rf-transition2": ({}, "30x30"),                     # 28 + (2-1)*2, then 1x1 adds 0
    "net400-rf-last": ({}, "38x38"),                            # 30 + 2*4
    "net400-jump": ({"i": 12}, "4"),                            # two max-pools: 2*2
    "net400-params-1x1": ({}, "16384"),                         # 1*1*512*32
    "net400-params-block1": ({"i": 5}, "1180160"),              # 3*3*256*512 = 1179648, + 512
    "layers-to-rf11": ({}, "5"),                                # 1 + 2*5 = 11
    "layers-to-rf": ({"k": 7, "rf": 33}, "6"),                  # 1 + 6*5 = 31 < 33 <= 1 + 6*6 = 37
    "rf-pool-position": ({"a": 2, "b": 1}, "10x10"),            # 1+2+2 = 5, mp +1 = 6 (j 2), +2*2 = 10
    "rf-strided-conv": ({"k": 3, "s": 2}, "13x13"),             # 3, +2*1 = 5 (j 2), +2*2 = 9, +2*2 = 13
    "rf-dilated": ({"d": 3}, "9x9"),                            # 3, effective kernel 3*(3-1)+1 = 7: 3 + 6
    "jump-strides": ({"s1": 2, "s2": 2}, "8"),                  # 2 * 2 * 2
    "out-size-formula": ({"n": 20, "k": 3, "p": 1, "s": 2}, "10x10"),   # floor((20 + 2 - 3)/2) + 1 = 9 + 1
    "out-size-stride2": ({"n": 55, "c": 32}, "28x28x32"),       # floor((55 + 2 - 3)/2) + 1 = 27 + 1
    "maxpool-size": ({"n": 175, "c": 16}, "87x87x16"),          # floor((175 - 2)/2) + 1 = 86 + 1
    "pools-to-size": ({"n": 64, "t": 4}, "4"),                  # 64 -> 32 -> 16 -> 8 -> 4
    "same-padding-shape": ({"n": 57}, "28x28x32"),              # 57, 57, floor(55/2) + 1 = 28, 28
    "kernels-shape": ({"n": 47, "m": 4}, "45x45x4"),            # 47 - 3 + 1
    "kernels-channels": ({"cin": 16, "cout": 24}, "24"),        # one channel per kernel
    "kernels-params": ({"m": 16}, "448"),                       # 3*3*3*16 + 16
    "params-conv-nobias": ({"k": 3, "cin": 64, "cout": 32}, "18432"),  # 9*64*32
    "params-conv-bias": ({"cin": 16, "cout": 128}, "18560"),    # 9*16*128 = 18432, + 128
    "fc-head-params": ({"n": 6, "c": 256}, "92170"),            # 6*6*256*10 = 92160, + 10
    "gap-head-params": ({"n": 6, "c": 128}, "1290"),            # 128*10 + 10
    "bn-params": ({"c": 128}, "256"),                           # 2*128
    "mnist-params-total": ({}, "7474"),
    "mnist-params-nobias": ({}, "7384"),
    "mnist-rf-final": ({}, "18x18"),
    "mnist-shape-before-gap": ({}, "6x6x16"),
    "conv-macs": ({"n": 24, "cin": 8, "cout": 32}, "1115136"),  # 22*22 positions * 3*3*8*32 = 484 * 2304
}


@pytest.fixture(scope="module")
def drawn():
    bank = load_bank(BANK)
    return {q.id: q for q in draw_quiz(bank, STUDENT, len(bank.questions)).questions}


def test_every_computed_question_has_a_hand_expectation(drawn):
    computed = {qid for qid, q in drawn.items() if q.computed}
    assert computed == set(EXPECTED)


@pytest.mark.parametrize("qid", sorted(EXPECTED))
def test_computed_key_matches_hand_arithmetic(drawn, qid):
    params, key = EXPECTED[qid]
    question = drawn[qid]
    assert question.params == params, "the drawing changed: redo the hand arithmetic for the new numbers"
    assert question.key.display == key


def test_choice_keys_point_at_the_option_the_bank_marks(drawn):
    bank = load_bank(BANK)
    for spec in bank.questions:
        q = drawn[spec.id]
        if spec.kind != "choice":
            continue
        if spec.options is None:
            assert q.key.value is spec.answer
        else:
            assert q.options[ord(q.key.value) - 97] == spec.options[spec.key_index]


def test_a_formula_key_shows_its_working_in_numbers_not_the_banks_expression(drawn):
    working = drawn["conv-macs"].key.working
    assert working == ("22x22 output positions x 2304 weights = 1115136",)
    assert "row." not in " ".join(working)
