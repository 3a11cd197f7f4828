"""Answer keys computed by the engine from a drawn stack, with the worked recurrence that explains them.

Pure: a question, its drawn stack and resolved layer in; a `Key` out. The
working is read off the engine's table (the numbers are the engine's), so the
feedback a student sees and the key can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.arch.engine import Row, Table, analyze
from grader.arch.layers import Layer
from grader.arch.spec import Stack
from grader.errors import GraderError
from grader.quiz import template

MAX_REPEATS = 64
_SPATIAL = ("conv", "maxpool", "avgpool", "gap", "linear")

Value = tuple[float, ...]


@dataclass(frozen=True)
class Key:
    value: Value | str | bool  # numbers (shape h,w,c / rf h,w / a count); an option letter; true/false
    display: str  # how people read it: 195x195x32, 12x12, 18432, b) ..., true
    answer: Any  # the same as JSON / an answers file writes it
    working: tuple[str, ...] = ()
    tolerance: float = 0.0


def numbers_key(value: Value, working: Sequence[str] = (), tolerance: float = 0.0) -> Key:
    """A numeric key; HxW(xC) values display with 'x', single numbers as numbers."""
    display = "x".join(_fmt(v) for v in value)
    answer: Any = display if len(value) > 1 else _plain(value[0])
    return Key(tuple(value), display, answer, tuple(working), tolerance)


def _plain(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def shape_value(row: Row, ask: str) -> Value:
    s = row.out_shape
    return {"hwc": (s.h, s.w, s.c), "hw": (s.h, s.w), "c": (s.c,)}[ask]


def rf_value(row: Row) -> Value:
    return tuple(row.rf)


def count_params(rows: Sequence[Row], bias: bool, bn: bool) -> int:
    """Trainable parameters of `rows`, with or without biases and batch-norm gamma/beta."""
    total = 0
    for row in rows:
        if row.kind == "bn":
            total += row.params if bn else 0
        else:
            total += row.params if bias else row.weights
    return total


def selected_rows(table: Table, layer: int | None) -> tuple[Row, ...]:
    return table.rows if layer is None else (table.rows[layer - 1],)


# ---------------------------------------------------------------- working

def kernel_along_h(layer: Layer, row: Row) -> tuple[int, int, int | str]:
    """(effective kernel, stride, padding) along the height axis."""
    if row.kind in ("gap", "linear"):
        return row.in_shape.h, row.in_shape.h, 0
    k = layer.d[0] * (layer.k[0] - 1) + 1
    return k, layer.s[0], "same" if layer.p == "same" else layer.p[0]


def size_working(stack: Stack, table: Table, upto: int) -> list[str]:
    """n: 400 -> 398 (conv3x3 32: 400 + 2*0 - 3 + 1) -> ... -> 195 (maxpool 2x2: floor((390 + 2*0 - 2)/2) + 1);
    C: ..."""
    sizes, channels = [str(table.input.h)], [str(table.input.c)]
    for layer, row in zip(stack.layers[:upto], table.rows[:upto], strict=True):
        out = row.out_shape
        if row.kind in ("conv", "maxpool", "avgpool"):
            k, s, p = kernel_along_h(layer, row)
            if p == "same":
                how = "same padding keeps the size"
            else:
                rounding = "ceil" if layer.ceil else "floor"
                how = (f"{rounding}(({row.in_shape.h} + 2*{p} - {k})/{s}) + 1" if s > 1
                       else f"{row.in_shape.h} + 2*{p} - {k} + 1")
            sizes.append(f"{out.h} ({row.label}: {how})")
        elif row.kind == "gap":
            sizes.append(f"1 ({row.label})")
        elif row.kind in ("flatten", "linear"):
            sizes.append(f"flat {out.c} ({row.label})")
        if out.c != row.in_shape.c and not out.flat:
            channels.append(f"{out.c} ({row.label})")
    lines = ["n_out = floor((n + 2p - k)/s) + 1", "n: " + " -> ".join(sizes)]
    if len(channels) > 1:
        lines.append("C: " + " -> ".join(channels) + " (a convolution outputs one channel per kernel)")
    else:
        lines.append(f"C: {channels[0]} (unchanged)")
    return lines


def rf_working(stack: Stack, table: Table, upto: int) -> list[str]:
    """r: 1 -> 3 (conv3x3 32: +2*1) -> ... -> 12 (maxpool 2x2: +1*1); j: 1 -> 2 (maxpool 2x2: *2)."""
    r, j = 1, 1
    rs, js = ["1"], ["1"]
    for row in table.rows[:upto]:
        if row.kind not in _SPATIAL and row.rf[0] == r:
            continue
        if row.rf[0] != r:
            rs.append(f"{row.rf[0]} ({row.label}: +{(row.rf[0] - r) // j}*{j})")
        if row.jump[0] != j:
            js.append(f"{row.jump[0]} ({row.label}: *{row.jump[0] // j})")
        r, j = row.rf[0], row.jump[0]
    lines = ["r_out = r_in + (k-1)*j_in, j_out = j_in*s, from r = 1, j = 1",
             "r: " + " -> ".join(rs), "j: " + " -> ".join(js)]
    last = table.rows[upto - 1].rf
    if last[0] != last[1]:
        lines.append(f"(height axis shown; the width axis gives {last[1]})")
    return lines


def params_working(rows: Sequence[Row], stack: Stack, bias: bool, bn: bool) -> list[str]:
    lines, parts = [], []
    for row in rows:
        layer = stack.layers[row.index - 1]
        if row.kind == "conv":
            cin = row.in_shape.c // layer.groups
            text = f"{row.label}: {layer.k[0]}*{layer.k[1]}*{cin}*{row.out_shape.c} = {row.weights}"
        elif row.kind == "linear":
            features = row.in_shape.c if row.in_shape.flat else row.in_shape.h * row.in_shape.w * row.in_shape.c
            text = f"{row.label}: {features}*{row.out_shape.c} = {row.weights}"
        elif row.kind == "bn":
            if bn:
                lines.append(f"bn: 2*{row.out_shape.c} = {row.params} (gamma and beta per channel)")
                parts.append(row.params)
            continue
        else:
            continue
        has_bias = row.params != row.weights
        if bias and has_bias:
            text += f" weights + {row.params - row.weights} bias = {row.params}"
        elif has_bias:
            text += " (bias not counted)"
        lines.append(text)
        parts.append(row.params if bias else row.weights)
    if len(parts) > 1:
        lines.append(f"total: {' + '.join(map(str, parts))} = {sum(parts)}")
    if not bn and any(r.kind == "bn" for r in rows):
        lines.append("batch norm not counted")
    return lines


# ---------------------------------------------------------------- keys

def compute_key(question: Any, stack: Stack, layer: int | None, target: int | None,
                params: Mapping[str, Any], table: Table | None = None) -> Key:
    """The key of a computed question for one drawn stack. Raises GraderError when the engine rejects it."""
    table = table or stack.table()
    kind = question.kind
    if kind == "shape":
        assert layer is not None, "a shape question asks about one layer"
        row = table.rows[layer - 1]
        return numbers_key(shape_value(row, question.ask), size_working(stack, table, layer), question.tolerance)
    if kind == "rf":
        assert layer is not None, "an rf question asks about one layer"
        return numbers_key(rf_value(table.rows[layer - 1]), rf_working(stack, table, layer), question.tolerance)
    if kind == "params":
        rows = selected_rows(table, layer)
        value = count_params(rows, question.bias, question.bn)
        return numbers_key((value,), params_working(rows, stack, question.bias, question.bn), question.tolerance)
    if kind == "formula":
        return _formula(question, stack, table, layer, target, params)
    raise ValueError(f"not a computed question kind: {kind}")


def _formula(question: Any, stack: Stack, table: Table, layer: int | None, target: int | None,
             params: Mapping[str, Any]) -> Key:
    if question.compute == "jump":
        assert layer is not None, "a jump question asks about one layer"
        row = table.rows[layer - 1]
        return numbers_key((row.jump[0],), rf_working(stack, table, layer)[2:3], question.tolerance)
    if question.compute == "repeats_to_rf":
        return repeats_key(stack, lambda row: row.rf[0] >= target, "r", lambda row: row.rf[0],
                           f"RF >= {target}", question.tolerance)
    if question.compute == "repeats_to_size":
        return repeats_key(stack, lambda row: row.out_shape.h <= target, "n", lambda row: row.out_shape.h,
                           f"size <= {target}", question.tolerance)
    assert layer is not None, "a formula question on a row names its layer"
    row = table.rows[layer - 1]
    context = {**params, "table": table, "rows": table.rows, "row": row, "input": table.input, "output": table.output}
    value = template.evaluate(question.expr, context, "expr")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GraderError(f"expr {question.expr!r} gives {value!r}, not a number", where="expr",
                          fix="the expression must compute a number from table / rows / row and the params")
    shown = template.render(question.working, context, "working") if question.working else "the answer"
    return numbers_key((value,), [f"{shown} = {_fmt(value)}"], question.tolerance)


def repeats_key(stack: Stack, reached, symbol: str, read, goal: str, tolerance: float = 0.0) -> Key:
    """How many times the stack's layers, repeated from its input, must be applied until `reached(row)`."""
    unit = len(stack.layers)
    chain = ["1" if symbol == "r" else str(stack.input.h)]
    for n in range(1, MAX_REPEATS + 1):
        row = analyze(stack.input, stack.layers * n).rows[-1]  # the engine raises once the map is used up
        chain.append(str(read(row)))
        if reached(row):
            block = " > ".join(layer.label for layer in stack.layers)
            what = "layer" if unit == 1 else "block"
            return numbers_key((n,), [f"{symbol}: " + " -> ".join(chain) + f": {n} x ({block}) to reach {goal}"
                                      f" ({n} {what}{'s' if n > 1 else ''})"], tolerance)
    raise GraderError(f"{goal} is not reached in {MAX_REPEATS} repeats", where="target",
                      fix="choose a target the repeated block can reach")

