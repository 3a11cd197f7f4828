"""Drawing a student's variant of a quiz: the same student always gets the same numbers.

Every random choice comes from SHA-256 of (quiz id, student id, question id,
attempt, counter), never from Python's `hash()` or `random`, so a variant is
identical across runs, machines, Python versions and PYTHONHASHSEED. A drawn
stack the engine rejects (a size below 1) is drawn again and never shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grader import yamlio
from grader.arch.engine import Table
from grader.arch.spec import Stack, parse_line, stack_from_data
from grader.errors import GraderError
from grader.quiz import template
from grader.quiz.bank import Bank, default_title
from grader.quiz.keys import Key, compute_key

MAX_ATTEMPTS = 200


def seed(quiz_id: str, student: str) -> str:
    """sha256(quiz id, student id) in hex: the root of every choice in one student's quiz."""
    return hashlib.sha256(f"{quiz_id}\x00{student}".encode()).hexdigest()


class Dice:
    """A deterministic stream of choices: value i is sha256(base, i) reduced to the range asked for."""

    def __init__(self, *parts: str):
        self._base = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
        self._count = 0

    def below(self, n: int) -> int:
        self._count += 1
        digest = hashlib.sha256(self._base + self._count.to_bytes(8, "big")).digest()
        return int.from_bytes(digest, "big") % n  # 256 bits: the modulo bias is negligible

    def pick(self, values: Sequence[Any]) -> Any:
        return values[self.below(len(values))]

    def shuffled(self, values: Sequence[Any]) -> list[Any]:
        out = list(values)
        for i in range(len(out) - 1, 0, -1):
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out


@dataclass(frozen=True)
class DrawnQuestion:
    id: str  # what answers are keyed by (`id: answer`): shown small, never as the heading
    kind: str
    text: str
    points: float
    key: Key
    params: dict[str, Any] = field(default_factory=dict)  # the drawn values (params and let)
    title: str = ""  # the heading: the bank's `title:`, rendered, else the kind's
    options: tuple[str, ...] = ()  # choice: in this student's order, lettered a, b, c ...
    explanation: str = ""
    stack: Stack | None = None
    layer: int | None = None  # 1-based row of the layer table the question asks about
    target: int | None = None  # formula: the RF or size to reach
    spec: Any = None  # the bank's question
    where: str = ""  # file:line of the question in the bank

    @property
    def computed(self) -> bool:
        return self.kind != "choice"

    @property
    def true_false(self) -> bool:
        return self.kind == "choice" and not self.options


@dataclass(frozen=True)
class DrawnQuiz:
    quiz: str
    title: str
    student: str
    questions: tuple[DrawnQuestion, ...]
    description: str = ""

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions)


def draw_quiz(bank: Bank, student: str, count: int | None = None) -> DrawnQuiz:
    """The student's quiz: `count` questions (default: the bank's count, else all), each drawn for them."""
    student = _student(student)
    chosen = select(bank, student, count)
    return DrawnQuiz(bank.quiz, bank.title, student, tuple(draw_question(bank, q, student) for q in chosen),
                     bank.description)


def _student(student: str) -> str:
    if not isinstance(student, str) or not student.strip():
        raise GraderError("the student id is empty", where="--student",
                          fix="give the id the LMS uses, e.g. --student s1234567")
    return student.strip()


def select(bank: Bank, student: str, count: int | None = None) -> list:
    """Which questions this student gets: the first `count` in an order seeded by the student, kept in bank order."""
    count = count or bank.count or len(bank.questions)
    if count > len(bank.questions):
        raise GraderError(f"asked for {count} questions, the bank has {len(bank.questions)}", where=bank.source,
                          fix=f"use --count {len(bank.questions)} or less")
    root = seed(bank.quiz, student)
    order = sorted(bank.questions, key=lambda q: hashlib.sha256(f"{root}\x00pick\x00{q.id}".encode()).hexdigest())
    picked: set[str] = set()
    for points, quota in points_quota(bank, count).items():  # the same points for every student
        picked.update([q.id for q in order if bank.points_of(q) == points][:quota])
    return [q for q in bank.questions if q.id in picked]


def points_quota(bank: Bank, count: int) -> dict[float, int]:
    """How many questions of each points value every student gets, so that every variant has the same maximum:
    each value's share of `count` in proportion to the bank, the remainders to the largest fractions (then the
    larger points value). Depends on the bank only, never on the student."""
    sizes: dict[float, int] = {}
    for q in bank.questions:
        sizes[bank.points_of(q)] = sizes.get(bank.points_of(q), 0) + 1
    exact = {points: count * n / len(bank.questions) for points, n in sizes.items()}
    quota = {points: int(share) for points, share in exact.items()}
    for points in sorted(exact, key=lambda p: (-(exact[p] - quota[p]), -p))[:count - sum(quota.values())]:
        quota[points] += 1
    return quota


def draw_question(bank: Bank, question: Any, student: str) -> DrawnQuestion:
    """One variant of one question; invalid draws (engine errors, failed `require`) are drawn again."""
    where = bank.where(question.id)
    root = seed(bank.quiz, _student(student))
    attempts = MAX_ATTEMPTS if question.params else 1
    reason = ""
    for attempt in range(attempts):
        dice = Dice(root, question.id, str(attempt))
        values = {name: dice.pick(choices) for name, choices in question.params.items()}
        for name, expr in question.let.items():
            values[name] = template.evaluate(expr, values, bank.where(question.id, "let", name))
        failed = [r for r in question.require if not template.evaluate(r, values, bank.where(question.id, "require"))]
        if failed:
            reason = f"require {failed[0]!r} does not hold"
            continue
        if question.kind == "choice":
            return _choice(bank, question, values, dice, where)
        stack = build_stack(bank, question, values)  # a spec that does not parse is the bank's fault: raised
        try:
            table = stack.table()
        except GraderError as err:  # a size below 1 and the like: this draw is invalid, draw again
            reason = err.what
            continue
        layer = resolve_row(bank, question, "layer", values, len(table.rows))
        target = _target(bank, question, values)
        try:
            key = compute_key(question, stack, layer, target, values, table)
        except GraderError as err:  # e.g. a target the repeated block cannot reach with this draw
            reason = err.what
            continue
        context = {**values, **describe(stack, table, layer), "target": target}
        text = template.render(question.text, context, bank.where(question.id, "text")).strip()
        explanation = template.render(question.explanation, context, bank.where(question.id, "explanation")).strip()
        return DrawnQuestion(question.id, question.kind, text, bank.points_of(question), key, values,
                             _title(bank, question, context), explanation=explanation, stack=stack, layer=layer,
                             target=target, spec=question, where=where)
    raise GraderError(f"question {question.id!r} has no valid variant in {attempts} draw(s): {reason}", where=where,
                      fix="change the params' ranges or add `require:` conditions so every draw gives a valid stack")


def _choice(bank: Bank, question: Any, values: dict, dice: Dice, where: str) -> DrawnQuestion:
    def render(text: str, key: str) -> str:
        return template.render(text, values, bank.where(question.id, key)).strip()

    text, explanation = render(question.text, "text"), render(question.explanation, "explanation")
    title = _title(bank, question, values)
    if question.options is None:
        truth = bool(question.answer)
        key = Key(truth, "true" if truth else "false", truth)
        return DrawnQuestion(question.id, "choice", text, bank.points_of(question), key, values, title,
                             explanation=explanation, spec=question, where=where)
    options = [render(o, "options") for o in question.options]
    order = dice.shuffled(range(len(options))) if question.shuffle else list(range(len(options)))
    letter = chr(97 + order.index(question.key_index))
    shown = tuple(options[i] for i in order)
    key = Key(letter, f"{letter}) {shown[ord(letter) - 97]}", letter)
    return DrawnQuestion(question.id, "choice", text, bank.points_of(question), key, values, title, options=shown,
                         explanation=explanation, spec=question, where=where)


def _title(bank: Bank, question: Any, context: dict) -> str:
    """The question's heading: its `title:` with the drawn values filled in, else what its kind asks for."""
    if not question.title.strip():
        return default_title(question)
    return template.render(question.title, context, bank.where(question.id, "title")).strip()


def build_stack(bank: Bank, question: Any, values: dict) -> Stack:
    """The question's stack with the drawn values filled in (a named stack, a one-line spec or YAML)."""
    raw = question.stack
    loc: tuple[str | int, ...] = ("questions", bank.index(question.id), "stack")
    if isinstance(raw, str) and raw.strip() in bank.stacks:
        name = raw.strip()
        raw, loc = bank.stacks[name], ("stacks", name)
    where = bank.doc.where(loc)
    try:
        if isinstance(raw, dict):
            return stack_from_data(yamlio.LocatedYaml(_nest(loc, _render_tree(raw, values, where)), bank.source,
                                                      bank.doc.lines), loc)
        text = template.render(raw, values, where).strip()
        if "\n" in text or text.startswith(("input:", "{")):
            return stack_from_data(yamlio.loads(text, where))
        return parse_line(text)
    except GraderError as err:
        if err.where and err.where.startswith(bank.source):
            raise
        detail = f" ({err.where})" if err.where else ""
        raise GraderError(f"{err.what}{detail}", where=where, fix=err.fix) from None


def _render_tree(node: Any, values: dict, where: str) -> Any:
    """Render every string of a YAML-form stack; a string that renders to a number becomes that number."""
    if isinstance(node, dict):
        return {k: _render_tree(v, values, where) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_tree(v, values, where) for v in node]
    if isinstance(node, str):
        text = template.render(node, values, where).strip()
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return text
    return node


def _nest(loc: tuple, node: Any) -> Any:
    """Data whose value at `loc` is `node`, so the engine's YAML reader reports the bank's lines."""
    for part in reversed(loc):
        node = {part: node}
    return node


def resolve_row(bank: Bank, question: Any, key: str, values: dict, rows: int) -> int | None:
    """A `layer:` as a 1-based row (negative counts from the end; `last` is -1); None means the whole stack."""
    raw = getattr(question, key)
    if raw is None:
        return None
    where = bank.where(question.id, key)
    text = template.render(raw, values, where).strip() if isinstance(raw, str) else raw
    if text == "last":
        text = -1
    try:
        number = int(text)
    except (TypeError, ValueError):
        raise GraderError(f"{key} {raw!r} is not a row number", where=where,
                          fix="write a row of the layer table (1 is the first layer, -1 the last)") from None
    if not (1 <= number <= rows or -rows <= number <= -1):
        raise GraderError(f"{key} {number} is outside the stack, which has {rows} layer{'s' if rows > 1 else ''}",
                          where=where,
                          fix=f"use 1..{rows}, or -1 for the last layer")
    return number if number > 0 else rows + 1 + number


def _target(bank: Bank, question: Any, values: dict) -> int | None:
    raw = getattr(question, "target", None)
    if raw is None:
        return None
    where = bank.where(question.id, "target")
    text = template.render(raw, values, where) if isinstance(raw, str) else raw
    try:
        return int(text)
    except (TypeError, ValueError):
        raise GraderError(f"target {raw!r} is not a whole number", where=where, fix="write target: 11") from None


def describe(stack: Stack, table: Table, layer: int | None) -> dict[str, Any]:
    """What a question's text may name besides its params: network, input, layers, layer, label, spec, output."""
    labels = [row.label for row in table.rows]
    network = " → ".join([str(table.input)] + [f"({i}) {label}" for i, label in enumerate(labels, 1)])
    return {"network": network, "input": str(table.input), "output": str(table.output), "layers": labels,
            "layer": layer, "label": labels[layer - 1] if layer else "", "spec": stack.source}
