"""Wrong-answer diagnoses: one test per mistake kind, each named after the mistake it recognises."""

import pytest

from grader import yamlio
from grader.quiz import check_answers
from grader.quiz.bank import bank_from_yaml
from grader.quiz.diagnose import KINDS

NET400 = ("400x400x3 > c3:32 > c3:64 > c3:128 > c3:256 > c3:512 > mp2 > c1:32 > c3:32 > c3:64 > c3:128 > c3:256"
          " > mp2 > c1:32 > c3:64")


def check(question: str, answer):
    """The result of answering a one-question bank."""
    bank = bank_from_yaml(yamlio.loads(f"quiz: d\ntitle: d\nquestions:\n  - id: q\n    text: x\n{question}", "d.yaml"))
    return check_answers(bank, {"q": answer}, "student").questions[0]


def rf(layer: int) -> str:
    return f"    kind: rf\n    stack: '{NET400}'\n    layer: {layer}\n"


def shape(stack: str, layer: int, ask: str = "hwc") -> str:
    return f"    kind: shape\n    stack: '{stack}'\n    layer: {layer}\n    ask: {ask}\n"


def params(stack: str, layer=None, bias=True, bn=True) -> str:
    layer_line = f"    layer: {layer}\n" if layer else ""
    return (f"    kind: params\n    stack: '{stack}'\n{layer_line}    bias: {str(bias).lower()}\n"
            f"    bn: {str(bn).lower()}\n")


def test_rf_doubled_at_maxpool_like_the_course_notes():
    result = check(rf(6), "22x22")  # notes: 11 x 2 = 22; the recurrence gives 11 + 1 = 12
    assert result.status == "wrong" and result.diagnosis == "rf_doubled_at_maxpool"
    assert "course notes' shortcut" in result.feedback
    assert "12 (maxpool 2x2: +1*1)" in result.feedback  # the worked recurrence for this variant
    assert check(rf(8), "24").diagnosis == "rf_doubled_at_maxpool"  # notes go on 22 -> 24 after a 3x3


def test_rf_ignored_jump():
    # 11, +1 at the max-pool, +0 at the 1x1, then +2 instead of +2*2: 14 (the recurrence: 16)
    result = check(rf(8), "14")
    assert result.diagnosis == "rf_ignored_jump" and "(k-1)*j_in" in result.feedback


def test_forgot_padding():
    result = check(shape("32x32x1 > c3:8 p1 > c3:8 p1", 2), "28x28x8")
    assert result.diagnosis == "forgot_padding" and "adds p on both sides" in result.feedback


@pytest.mark.parametrize("answer", ["27.5", "28"])
def test_forgot_floor(answer):
    # floor((56 - 3)/2) + 1 = 27; without the floor 53/2 + 1 = 27.5, rounded up 28
    result = check(shape("56x56x1 > c3:16 s2", 1, "hw"), answer)
    assert result.expected == "27x27"
    assert result.diagnosis == "forgot_floor" and "floor" in result.feedback


def test_counted_bias_where_the_question_excludes_it():
    result = check(params("195x195x32 > c3:64", bias=False), "18496")  # 3*3*32*64 = 18432, +64 bias
    assert result.expected == "18432" and result.diagnosis == "counted_bias"


def test_forgot_bias_where_the_question_counts_it():
    result = check(params("195x195x32 > c3:64", bias=True), "18432")
    assert result.expected == "18496" and result.diagnosis == "forgot_bias"


def test_counted_batchnorm():
    result = check(params("28x28x1 > c3:8 > bn", bn=False), "96")  # 72 + 8 = 80; batch norm adds 2*8
    assert result.expected == "80" and result.diagnosis == "counted_batchnorm"


def test_forgot_batchnorm():
    result = check(params("28x28x1 > c3:8 > bn", bn=True), "80")
    assert result.expected == "96" and result.diagnosis == "forgot_batchnorm"


def test_channels_swapped_in_a_shape():
    result = check(shape(NET400, 7), "195x195x512")  # the 1x1 cuts 512 channels to 32
    assert result.diagnosis == "channels_swapped" and "input channels (512)" in result.feedback


def test_channels_swapped_in_parameters():
    result = check(params(NET400, layer=7), "16896")  # 512*32 weights + 512 "biases" instead of 32
    assert result.expected == "16416" and result.diagnosis == "channels_swapped"


def test_neighbour_layer():
    result = check(shape(NET400, 8), "195x195x32")  # that is layer 7's output; layer 8 gives 193x193x32
    assert result.diagnosis == "neighbour_layer" and "layer 8 (conv3x3 32)" in result.feedback


def test_no_diagnosis_for_an_unrelated_wrong_answer_or_a_right_one():
    wrong = check(rf(6), "40")
    assert wrong.status == "wrong" and wrong.diagnosis is None
    right = check(rf(6), "12")
    assert right.status == "correct" and right.diagnosis is None


def test_a_mistake_that_gives_the_right_key_says_nothing():
    # no padding and an exact division: "forgetting" padding or the floor changes nothing, so 26 is just wrong
    result = check(shape("28x28x1 > c3:4", 1, "hw"), "25")
    assert result.diagnosis is None


def test_every_mistake_kind_has_a_test_here():
    tested = {"rf_doubled_at_maxpool", "rf_ignored_jump", "forgot_padding", "forgot_floor", "counted_bias",
              "forgot_bias", "counted_batchnorm", "forgot_batchnorm", "channels_swapped", "neighbour_layer"}
    assert set(KINDS) == tested
