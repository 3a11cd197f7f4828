"""Which common mistake a wrong answer looks like.

Each mistake recomputes the key under the mistaken rule (the engine on a
changed stack, or a small recurrence written the wrong way) and compares it with
the answer; a mistake that gives the correct key for this variant says nothing.
Pure: a drawn question and a normalised answer in, a `Diagnosis` or None out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction

from grader.arch.spec import Stack
from grader.errors import GraderError
from grader.quiz.answers import Normalized, same_numbers
from grader.quiz.draw import DrawnQuestion
from grader.quiz.keys import Key, Value, compute_key, count_params, kernel_along_h, selected_rows, shape_value


@dataclass(frozen=True)
class Diagnosis:
    kind: str
    message: str


@dataclass(frozen=True)
class Mistake:
    kind: str
    applies: Callable[[DrawnQuestion], bool]
    alternatives: Callable[[DrawnQuestion], Iterable[Value]]  # the key under the mistaken rule
    message: str  # may name {alt}, {layer}, {label}, {cin}, {cout}


def diagnose(question: DrawnQuestion, answer: Normalized) -> Diagnosis | None:
    """The first mistake whose recomputed key matches the answer (and differs from the true key)."""
    if not question.computed or answer.numbers is None:
        return None
    for mistake in MISTAKES:
        if not mistake.applies(question):
            continue
        try:
            alternatives = list(mistake.alternatives(question))
        except GraderError:  # under the mistaken rule the stack is invalid: it cannot explain the answer
            continue
        for alt in alternatives:
            if same_numbers(alt, _numbers(question.key), question.key.tolerance):
                continue
            if same_numbers(answer.numbers, alt, question.key.tolerance):
                return Diagnosis(mistake.kind, mistake.message.format(alt=_show(alt), **_names(question)))
    return None


def mistaken_keys(question: DrawnQuestion) -> list[tuple[Value, Diagnosis]]:
    """Every wrong answer a known mistake gives for this variant, with what it says (the first mistake to give a
    value wins, as in `diagnose`): what an LMS export attaches as answer-specific feedback."""
    if not question.computed:
        return []
    found: list[tuple[Value, Diagnosis]] = []
    for mistake in MISTAKES:
        if not mistake.applies(question):
            continue
        try:
            alternatives = list(mistake.alternatives(question))
        except GraderError:
            continue
        for alt in alternatives:
            tolerance = question.key.tolerance
            if same_numbers(alt, _numbers(question.key), tolerance) or any(same_numbers(alt, v, 0) for v, _ in found):
                continue
            found.append((tuple(alt), Diagnosis(mistake.kind, mistake.message.format(alt=_show(alt),
                                                                                      **_names(question)))))
    return found


def _show(value: Value) -> str:
    return "x".join(str(int(v)) if float(v).is_integer() else f"{float(v):g}" for v in value)


def _names(q: DrawnQuestion) -> dict[str, object]:
    if q.layer is None:
        return {"layer": "", "label": "", "cin": "", "cout": ""}
    row = _stack(q).table().rows[_layer(q) - 1]
    return {"layer": q.layer, "label": row.label, "cin": row.in_shape.c, "cout": row.out_shape.c}


def _stack(q: DrawnQuestion) -> Stack:
    """The stack of a computed question (only choice questions, which are never diagnosed, have none)."""
    assert q.stack is not None, f"{q.id}: a computed question without its stack"
    return q.stack


def _layer(q: DrawnQuestion) -> int:
    """The row a row question asks about (the mistakes that read it apply to row questions only)."""
    assert q.layer is not None, f"{q.id}: a row question without its layer"
    return q.layer


def _kind(*kinds: str) -> Callable[[DrawnQuestion], bool]:
    return lambda q: q.kind in kinds


def _with_layers(stack: Stack, **changes) -> Stack:
    return replace(stack, layers=tuple(replace(layer, **changes) for layer in stack.layers))


def _rekey(q: DrawnQuestion, stack: Stack | None = None, layer: int | None = None) -> Value:
    """The engine's key for the same question on a changed stack, or for another layer."""
    return _numbers(compute_key(q.spec, stack or _stack(q), layer or q.layer, q.target, q.params))


def _numbers(key: Key) -> Value:
    """The key of a computed question, which is numbers (option letters and true/false are choice keys)."""
    assert isinstance(key.value, tuple), f"a computed key that is not numbers: {key.display}"
    return key.value


# ---------------------------------------------------------------- receptive field

def _has_maxpool(q: DrawnQuestion) -> bool:
    return q.kind == "rf" and any(row.kind == "maxpool" for row in _stack(q).table().rows[:q.layer])


def _rf_by_rule(q: DrawnQuestion, at_pool: str, keep_jump: bool) -> Value:
    """The RF along the height axis with a wrong rule: at_pool 'double' (r *= s) or 'add' (r += k-1)."""
    table = _stack(q).table()
    r, j = 1, 1
    for layer, row in zip(_stack(q).layers, table.rows[:q.layer], strict=False):
        if row.kind not in ("conv", "maxpool", "avgpool", "gap", "linear"):
            continue
        k, s, _ = kernel_along_h(layer, row)
        if row.kind == "maxpool" and at_pool == "double":
            r *= s
        else:
            r += (k - 1) * (j if keep_jump else 1)
        j *= s
    return (r, r)


def _rf_doubled(q: DrawnQuestion) -> Iterable[Value]:
    yield _rf_by_rule(q, "double", keep_jump=False)  # the course notes: 11 -> 22, then +2 per 3x3
    yield _rf_by_rule(q, "double", keep_jump=True)


def _rf_no_jump(q: DrawnQuestion) -> Iterable[Value]:
    yield _rf_by_rule(q, "add", keep_jump=False)


# ---------------------------------------------------------------- sizes

def _has_padding(q: DrawnQuestion) -> bool:
    return q.kind == "shape" and any(layer.p != (0, 0) for layer in _stack(q).layers[:q.layer])


def _no_padding(q: DrawnQuestion) -> Iterable[Value]:
    yield _rekey(q, stack=_with_layers(_stack(q), p=(0, 0)))


def _unfloored(q: DrawnQuestion) -> Iterable[Value]:
    """Sizes from (n + 2p - k)/s + 1 kept as fractions, or rounded up."""
    table = _stack(q).table()
    row = table.rows[_layer(q) - 1]
    for rounding in (lambda x: x, math.ceil):
        n: Fraction | int = Fraction(table.input.h)
        for layer, step in zip(_stack(q).layers, table.rows[:q.layer], strict=False):
            if step.kind in ("conv", "maxpool", "avgpool"):
                k, s, p = kernel_along_h(layer, step)
                if isinstance(p, int):  # "same" padding keeps the size: no rounding to get wrong
                    n = rounding(Fraction(n + 2 * p - k, s)) + 1
            elif step.kind == "gap":
                n = 1
        yield (float(n), float(n)) + shape_value(row, q.spec.ask)[2:]


def _channels_in(q: DrawnQuestion) -> Iterable[Value]:
    row = _stack(q).table().rows[_layer(q) - 1]
    if q.kind == "shape":
        yield shape_value(row, q.spec.ask)[:-1] + (row.in_shape.c,)
    elif row.params != row.weights:  # parameters with one bias per input channel instead of per output channel
        inputs = (row.in_shape.c if row.kind == "conv" or row.in_shape.flat
                  else row.in_shape.h * row.in_shape.w * row.in_shape.c)
        yield (row.weights + inputs,)


def _swap_applies(q: DrawnQuestion) -> bool:
    if q.layer is None or q.kind not in ("shape", "params"):
        return False
    row = _stack(q).table().rows[_layer(q) - 1]
    return row.kind in ("conv", "linear") and (q.kind == "shape" and q.spec.ask != "hw"
                                               or q.kind == "params" and q.spec.bias)


# ---------------------------------------------------------------- parameters

def _flag(name: str, value: bool) -> Callable[[DrawnQuestion], bool]:
    return lambda q: q.kind == "params" and getattr(q.spec, name) is value


def _flipped(name: str) -> Callable[[DrawnQuestion], Iterable[Value]]:
    def alternatives(q: DrawnQuestion) -> Iterable[Value]:
        rows = selected_rows(_stack(q).table(), q.layer)
        flags = {"bias": q.spec.bias, "bn": q.spec.bn}
        flags[name] = not flags[name]
        yield (count_params(rows, flags["bias"], flags["bn"]),)
    return alternatives


# ---------------------------------------------------------------- any row question

def _neighbours(q: DrawnQuestion) -> Iterable[Value]:
    rows = len(_stack(q).table().rows)
    for other in (_layer(q) - 1, _layer(q) + 1):
        if 1 <= other <= rows:
            yield _rekey(q, layer=other)


MISTAKES: tuple[Mistake, ...] = (
    Mistake("rf_doubled_at_maxpool", _has_maxpool, _rf_doubled,
            "This matches doubling the RF at the max-pool (the course notes' shortcut, e.g. 11 -> 22). The grader "
            "uses the standard recurrence: a 2x2 max-pool adds (2-1)*j_in like any layer and doubles the jump, "
            "so every later 3x3 adds 2*j."),
    Mistake("rf_ignored_jump", _kind("rf"), _rf_no_jump,
            "This matches adding k-1 at every layer without multiplying by the jump: after a stride or a max-pool "
            "each layer adds (k-1)*j_in, where j_in is the product of the strides before it."),
    Mistake("forgot_padding", _has_padding, _no_padding,
            "This matches the size without the padding ({alt}): n_out = floor((n + 2p - k)/s) + 1 adds p on both "
            "sides."),
    Mistake("forgot_floor", lambda q: q.kind == "shape" and q.spec.ask != "c", _unfloored,
            "This matches (n + 2p - k)/s + 1 without rounding down: a window that does not fit is dropped, "
            "so take the floor of the division."),
    Mistake("counted_bias", _flag("bias", False), _flipped("bias"),
            "This counts the biases, but the question asks for the parameters without bias."),
    Mistake("forgot_bias", _flag("bias", True), _flipped("bias"),
            "This leaves out the biases (one per output channel), which the question counts."),
    Mistake("counted_batchnorm", _flag("bn", False), _flipped("bn"),
            "This counts batch norm's gamma and beta, but the question leaves batch norm out."),
    Mistake("forgot_batchnorm", _flag("bn", True), _flipped("bn"),
            "This leaves out batch norm's 2 trainable parameters (gamma, beta) per channel, which the question "
            "counts."),
    Mistake("channels_swapped", _swap_applies, _channels_in,
            "This uses the input channels ({cin}) where layer {layer} ({label}) outputs {cout}: each kernel gives one "
            "output channel (and has one bias); the input channels only set each kernel's depth."),
    Mistake("neighbour_layer", lambda q: q.kind in ("shape", "rf") and q.layer is not None, _neighbours,
            "This is the value one layer off ({alt}): count the rows of the table from 1, the first layer after the "
            "input; the question asks about layer {layer} ({label})."),
)

KINDS = tuple(m.kind for m in MISTAKES)
