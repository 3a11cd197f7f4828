"""Variants: the same student always gets the same quiz; different students get different numbers."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader import yamlio
from grader.errors import GraderError
from grader.quiz import draw_quiz, load_bank
from grader.quiz.bank import bank_from_yaml
from grader.quiz.draw import Dice, draw_question, seed, select

ROOT = Path(__file__).resolve().parents[1]
BANK = ROOT / "quizzes" / "cnn-basics.yaml"


def bank(text: str):
    return bank_from_yaml(yamlio.loads(text, "bank.yaml"))


def _make(hashseed: str, student: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.Popen([sys.executable, "-m", "grader", "quiz", "make", str(BANK), "--student", student,
                             "--format", "json", "--with-key"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_same_student_same_quiz_across_processes_with_different_hash_seeds():
    runs = [_make("1", "s1234567"), _make("4242", "s1234567")]  # side by side: two cold starts in the time of one
    (first, err1), (second, err2) = (run.communicate(timeout=60) for run in runs)
    assert [run.returncode for run in runs] == [0, 0], err1 + err2
    assert first == second
    assert '"answer"' in first


def test_seed_is_sha256_of_quiz_and_student():
    assert seed("cnn-basics", "alice") == hashlib.sha256(b"cnn-basics\x00alice").hexdigest()
    dice, again = Dice("a", "b"), Dice("a", "b")
    assert [dice.below(1000) for _ in range(5)] == [again.below(1000) for _ in range(5)]


def test_hundred_students_get_at_least_twenty_variants_of_a_parametric_question():
    loaded = load_bank(BANK)
    for qid in ("out-size-formula", "maxpool-size", "layers-to-rf", "params-conv-nobias", "conv-macs"):
        spec = next(q for q in loaded.questions if q.id == qid)
        variants = set()
        for n in range(100):
            q = draw_question(loaded, spec, f"student-{n}")
            variants.add((q.text, q.key.display))
        assert len(variants) >= 20, qid


def test_different_students_get_different_numbers_and_the_same_student_the_same():
    loaded = load_bank(BANK)
    quizzes = [draw_quiz(loaded, s, len(loaded.questions)) for s in ("alice", "bob", "alice")]
    texts = [[q.text for q in quiz.questions] for quiz in quizzes]
    assert texts[0] == texts[2]
    assert texts[0] != texts[1]


def test_count_picks_the_same_questions_for_the_same_student_in_bank_order():
    loaded = load_bank(BANK)
    picked = [q.id for q in select(loaded, "carol", 10)]
    assert picked == [q.id for q in select(loaded, "carol", 10)]
    assert len(picked) == 10
    order = [q.id for q in loaded.questions]
    assert picked == sorted(picked, key=order.index)
    assert picked != [q.id for q in select(loaded, "dave", 10)]
    assert len(draw_quiz(loaded, "carol").questions) == loaded.count  # the bank's default


def test_count_larger_than_the_bank_is_refused():
    with pytest.raises(GraderError, match="the bank has 56") as err:
        select(load_bank(BANK), "x", 500)
    assert "--count 56" in err.value.fix


def test_invalid_stacks_are_redrawn_never_shown():
    # n in 3..12 with two 5x5 convolutions: n < 9 leaves a size below 1, so those draws must be redrawn
    b = bank("""
quiz: redraw
title: t
questions:
  - id: small
    kind: shape
    params: {n: {range: [3, 12]}}
    stack: "{{ n }}x{{ n }}x1 > c5:4 > c5:4"
    layer: 2
    text: "{{ n }}"
""")
    sizes = {int(draw_quiz(b, f"s{i}").questions[0].params["n"]) for i in range(60)}
    assert sizes and min(sizes) >= 9
    assert sizes == {9, 10, 11, 12}


def test_require_conditions_filter_draws():
    b = bank("""
quiz: req
title: t
questions:
  - id: q
    kind: shape
    params: {k: [3, 5, 7], n: {range: [5, 30]}}
    let: {p: "k // 2"}
    require: ["n % 2 == 0"]
    stack: "{{ n }}x{{ n }}x1 > c{{ k }}:4 p{{ p }}"
    layer: 1
    ask: hw
    text: "{{ n }} {{ k }} {{ p }}"
""")
    for i in range(30):
        q = draw_quiz(b, f"s{i}").questions[0]
        assert q.params["n"] % 2 == 0 and q.params["p"] == q.params["k"] // 2
        assert q.key.value == (q.params["n"], q.params["n"])  # padding k//2 keeps the size


def test_a_question_that_can_never_be_valid_names_the_bank_line():
    b = bank("""
quiz: never
title: t
questions:
  - id: impossible
    kind: shape
    params: {n: [2, 3]}
    stack: "{{ n }}x{{ n }}x1 > c5:4"
    layer: 1
    text: "x"
""")
    with pytest.raises(GraderError) as err:
        draw_quiz(b, "anyone")
    assert err.value.where == "bank.yaml:5"
    assert "no valid variant" in err.value.what and "larger than the input" in err.value.what


def test_layer_outside_the_stack_is_a_bank_error_not_a_redraw():
    b = bank("""
quiz: rows
title: t
questions:
  - id: q
    kind: rf
    stack: "28x28x1 > c3:4"
    layer: 3
    text: "x"
""")
    with pytest.raises(GraderError) as err:
        draw_quiz(b, "s")
    assert err.value.where == "bank.yaml:8" and "has 1 layer" in err.value.what


def test_empty_student_id_is_refused():
    with pytest.raises(GraderError, match="student id is empty"):
        draw_quiz(load_bank(BANK), "  ")


def test_choice_options_are_shuffled_per_student_and_the_key_follows():
    loaded = load_bank(BANK)
    spec = next(q for q in loaded.questions if q.id == "gap-vs-fc")
    orders = set()
    for n in range(20):
        q = draw_question(loaded, spec, f"s{n}")
        orders.add(q.options)
        assert q.options[ord(q.key.value) - 97] == spec.options[0]
    assert len(orders) > 5
